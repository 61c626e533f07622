"""The NTIRE 2022 VQE scoring as data (every frame / every 10th, per video, over videos) against hand-computed values,
and `eval --track vqe --save-frames` output packed as vqe-results as it is."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ntirekit.data.video import write_png_folder, write_qp_file
from ntirekit.core.registry import discover
from ntirekit.quality.vqe_scoring import (NTIRE2022_VQE, NTIRE2022_VQE_VALIDATION, score_video, score_videos,
                                          scored_frames)

from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


def test_the_scorings_are_the_challenge_protocol():
    for s in (NTIRE2022_VQE, NTIRE2022_VQE_VALIDATION):
        assert s.psnr_protocol == "challenge" and s.border == 0
    assert NTIRE2022_VQE.frame_step == 1 and NTIRE2022_VQE_VALIDATION.frame_step == 10


def test_scored_frames_every_10th_is_010_020_in_ffmpeg_numbering():
    assert scored_frames(3) == [0, 1, 2]
    assert scored_frames(21, 10) == [9, 19]                 # files 010.png, 020.png
    assert scored_frames(30, 10) == [9, 19, 29]
    assert scored_frames(10, 10) == [9]
    with pytest.raises(ValueError):
        scored_frames(9, 10)


def test_per_video_and_over_videos_aggregation_by_hand():
    # video a: 21 frames with PSNR 30 + i/10 (i = 0..20); every frame: mean = 31.0; every 10th: frames 9, 19 ->
    # (30.9 + 31.9) / 2 = 31.4
    a = [30 + i / 10 for i in range(21)]
    # video b: 12 frames, frame 4 exact (inf, skipped), the others 25; every 10th: frame 9 only -> 25
    b = [25.0] * 12
    b[4] = math.inf
    assert score_video(a) == pytest.approx(31.0)
    assert score_video(a, NTIRE2022_VQE_VALIDATION) == pytest.approx(31.4)
    assert score_video(b) == pytest.approx(25.0)
    per, overall = score_videos({"a": a, "b": b})
    assert per == pytest.approx({"a": 31.0, "b": 25.0}) and overall == pytest.approx(28.0)
    per, overall = score_videos({"a": a, "b": b}, NTIRE2022_VQE_VALIDATION)
    assert per == pytest.approx({"a": 31.4, "b": 25.0}) and overall == pytest.approx(28.2)
    # the mean over videos is not the mean over all frames (a has more frames than b)
    assert overall != pytest.approx(np.mean([a[9], a[19], b[9]]))


def _pair(root: Path, n: int = 12, h: int = 36, w: int = 44) -> None:
    yy, xx = np.mgrid[0:h, 0:w]
    gt, lq = [], []
    for i in range(n):
        base = np.stack([128 + 60 * np.sin((xx + 2 * i) / 7.0), 128 + 50 * np.cos((yy - i) / 5.0),
                         128 + 40 * np.sin((xx + yy + i) / 9.0)], -1)
        gt.append(np.clip(base, 0, 255).astype(np.uint8))
        noisy = base + np.random.default_rng(i).normal(0, 4, base.shape)
        lq.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    write_png_folder(gt, root / "gt" / "001")
    write_png_folder(lq, root / "lq" / "001")
    write_qp_file(root / "lq" / "001" / "qp.txt", [37, 42, 41, 42] * (n // 4))


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_eval_save_frames_feeds_pack_vqe_results(tmp_path):
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.data.images import read_image
    from ntirekit.pack import pack
    from ntirekit.quality import psnr

    data = tmp_path / "data"
    _pair(data)
    entries = tmp_path / "entries"
    shutil.copytree(REPO / "ntirekit" / "baselines" / "basicvsrpp", entries / "tiny_vqe")
    spec = (entries / "tiny_vqe" / "entry.toml").read_text().replace('name = "basicvsrpp"', 'name = "tiny_vqe"')
    (entries / "tiny_vqe" / "entry.toml").write_text(spec.replace(
        "mid_channels = 64, num_blocks = 7", 'mid_channels = 16, num_blocks = 1, flow = "zero", hr_channels = 4'))
    assert discover([entries], include_defaults=False)["tiny_vqe"].spec.kwargs["hr_channels"] == 4
    for every_10th in (False, True):
        out = tmp_path / f"frames{int(every_10th)}"
        args = ["eval", "--track", "vqe", "--allow-random", "--data", str(data), "--entries", str(entries), "--entry", "tiny_vqe",
                "--device", "cpu", "--save-frames", str(out), "--extra-data", "1", "--out",
                str(tmp_path / f"res{int(every_10th)}"), "--leaderboard", "none", "--quiet", "--no-isolate"]
        result = CliRunner().invoke(main, args + (["--every-10th"] if every_10th else []))
        assert result.exit_code == 0, result.output
        saved = sorted(p.name for p in (out / "tiny_vqe" / "001").iterdir())
        assert saved == (["010.png"] if every_10th else [f"{i:03d}.png" for i in range(1, 13)])
        readme = (out / "tiny_vqe" / "readme.txt").read_text()
        assert "runtime per frame [s] :" in readme and "CPU[1] / GPU[0] : 1" in readme
        assert "Extra Data [1] / No Extra Data [0] : 1" in readme
        outcome = pack(out / "tiny_vqe", "vqe-results", tmp_path / f"r{int(every_10th)}.zip",
                       data=str(data / "lq"))
        assert outcome.report.ok, outcome.report.problems
        assert outcome.zip_path is not None and outcome.zip_path.is_file()
        # the record's video PSNR is the mean over the scored frames of the saved outputs
        import json

        (rec_file,) = (tmp_path / f"res{int(every_10th)}").glob("tiny_vqe*.json")
        rec = json.loads(rec_file.read_text())
        assert rec["frame_step"] == (10 if every_10th else 1)
        gts = [read_image(p) for p in sorted((data / "gt" / "001").glob("*.png"))]
        values = [psnr(read_image(out / "tiny_vqe" / "001" / name), gts[int(name[:3]) - 1], protocol="challenge",
                       border=0) for name in saved]
        assert rec["videos"][0]["psnr_db"] == pytest.approx(float(np.mean(values)), abs=1e-9)
