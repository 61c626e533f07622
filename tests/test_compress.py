"""HEVC compression of clean clips (x265, low-delay P, PQF QP pattern) and the ``ntirekit data`` commands."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.data.compress import CompressError, ToolNotFoundError, compress_clip, hm_ldp_qps
from ntirekit.data.frames import find_pqf, frame_psnr
from ntirekit.data.video import Clip, ClipError, read_clip, write_png_folder, write_yuv420

needs_codec = pytest.mark.skipif(shutil.which("x265") is None or shutil.which("ffmpeg") is None,
                                 reason="x265/ffmpeg not installed (apt-get install x265 ffmpeg)")


def test_hm_low_delay_p_qps():
    # HM encoder_lowdelay_P_main.cfg at QP 37: offsets 5, 4, 5, 1, plus the QP-offset model (+3) on the first three
    assert hm_ldp_qps(9) == [37, 42, 41, 42, 38, 42, 41, 42, 38]
    assert hm_ldp_qps(9, qp_model=True) == [37, 45, 44, 45, 38, 45, 44, 45, 38]
    assert hm_ldp_qps(5, period=2, qp_model=True) == [37, 45, 38, 45, 38]
    assert hm_ldp_qps(3, qp=22, qp_model=True) == [22, 27, 26]  # 27·0.259 - 6.5 + 0.5 < 1: the model adds 0
    assert hm_ldp_qps(3, qp=50, qp_model=True) == [50, 51, 51]  # clipped to 51
    with pytest.raises(ValueError):
        hm_ldp_qps(0)


def test_missing_encoder_says_how_to_install(tmp_path):
    clip = Clip("c", [np.zeros((8, 8, 3), np.uint8)] * 2)
    with pytest.raises(ToolNotFoundError, match=r"apt-get install x265 ffmpeg"):
        compress_clip(clip, tmp_path, encoder="x265-that-is-not-installed")


def _crop(video_dir, n=12):
    src = read_clip(video_dir / "realbasicvsr_demo_000")
    return [f[104:232, 256:384] for f in src.frames[:n]]  # 128×128: a few hundred ms to encode


@needs_codec
def test_compress_shows_the_pqf_pattern(tmp_path, video_dir):
    frames = _crop(video_dir)
    out = compress_clip(Clip("crop", frames, fps=30), tmp_path, qp=37, preset="ultrafast")
    assert out == tmp_path / "crop"
    clip = read_clip(out)
    assert len(clip) == 12 and clip.size == (128, 128) and clip.fps == 30
    assert clip.qps == hm_ldp_qps(12)
    meta = json.loads((out / "clip.json").read_text())
    assert meta["qp"] == 37 and meta["pqf_period"] == 4 and meta["pattern"] == "hm-ldp"
    assert meta["encoder"].startswith("x265 ") and meta["decoder"].startswith("ffmpeg ")
    assert meta["pqf_positions"] == [0, 4, 8] and len(meta["bits"]) == 12
    assert (out / meta["bitstream"]).stat().st_size > 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png")[-1] == "00000011.png"

    psnr = frame_psnr(clip.frames, frames)
    for k in (0, 4, 8):  # each PQF clearly above its neighbours
        neighbours = [psnr[j] for j in (k - 1, k + 1) if 0 <= j < len(psnr)]
        assert psnr[k] > max(neighbours) + 1.0, psnr
    assert find_pqf(12, qps=clip.qps).positions == [0, 4, 8]
    est = find_pqf(12, frame_psnr=psnr)
    assert est.method == "quality" and est.positions == [0, 4, 8]

    # Compressing again replaces the folder written before, but never a folder that is not ours.
    assert compress_clip(Clip("crop", frames[:5]), tmp_path, preset="ultrafast") == out
    assert len(read_clip(out)) == 5
    (tmp_path / "mine").mkdir()
    with pytest.raises(CompressError, match="not a compressed clip"):
        compress_clip(Clip("mine", frames[:2]), tmp_path, preset="ultrafast")


@needs_codec
def test_compress_checks_sizes(tmp_path):
    with pytest.raises(ClipError, match="even width and height"):
        compress_clip(Clip("odd", [np.zeros((9, 8, 3), np.uint8)]), tmp_path)


@needs_codec
def test_cli_compress_and_inspect(tmp_path, video_dir):
    src = tmp_path / "src"
    write_png_folder(_crop(video_dir, 9), src)
    runner = CliRunner()
    res = runner.invoke(main, ["data", "compress", str(src), "--out", str(tmp_path / "out"), "--frames", "8",
                               "--preset", "ultrafast"])
    assert res.exit_code == 0, res.output
    assert "8 frames, QP 37 (PQF every 4)" in res.output and "PQF" in res.output

    res = runner.invoke(main, ["data", "inspect", str(tmp_path / "out" / "src"), "--gt", str(src), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["frames"] == 8 and report["size"] == [128, 128] and report["duplicates"] == 0
    assert report["qps"] == hm_ldp_qps(8) and len(report["psnr"]) == 8 and report["gt_frames"] == 9
    assert report["pqf"]["method"] == "qp" and report["pqf"]["positions"] == [0, 4]
    assert report["pqf"]["psnr_mean_pqf"] > report["pqf"]["psnr_mean_other"] + 1.0

    res = runner.invoke(main, ["data", "inspect", str(tmp_path / "out" / "src"), "--gt", str(src)])
    assert res.exit_code == 0, res.output
    assert "PQFs (qp:" in res.output and "PSNR vs" in res.output
    # without --gt a compressed clip is compared with the source its clip.json names: the same per-frame PSNR
    res = runner.invoke(main, ["data", "inspect", str(tmp_path / "out" / "src"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["psnr"] == report["psnr"]


def test_cli_inspect_duplicates_and_errors(tmp_path):
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (10, 10, 20, 30, 30, 30)]
    write_yuv420(frames, tmp_path / "dups_8x8_25.yuv")
    runner = CliRunner()
    res = runner.invoke(main, ["data", "inspect", str(tmp_path / "dups_8x8_25.yuv"), "--pqf-period", "2"])
    assert res.exit_code == 0, res.output
    assert "6 frames, 8x8, 25 fps" in res.output
    assert "duplicates: 3 at 1, 4-5" in res.output
    assert "PQFs (period: frames 0, 2, 4, ... (period 2)): [0, 2, 4]" in res.output

    res = runner.invoke(main, ["data", "inspect", str(tmp_path / "dups_8x8_25.yuv"), "--size", "8x9"])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "not a whole number" in res.output
