"""``ntirekit eval`` end to end through the CLI: records, closing table, one broken entry among good ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.data.images import write_image
from ntirekit.quality import psnr
from tests.helpers.entries import write_entry
from tests.helpers.sandbox import EXPECTED_SANDBOX

BROKEN = "import torch\nclass TinySR(torch.nn.Module):\n    def __init__(self, scale=4):\n        super().__init__()\n" \
         "    def forward(self, x):\n        raise RuntimeError('exploded')\n"

IDENTITY_X2 = '''
import torch
from torch import nn


class NearestX2(nn.Module):
    """Nearest-neighbour x2 upscaling with one (identity) conv, so the output is known exactly."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.up = nn.Upsample(scale_factor=scale, mode="nearest")

    def forward(self, x):
        return self.up(self.conv(x))
'''


@pytest.fixture()
def tiny_world(tmp_path: Path) -> tuple[Path, Path]:
    entries = tmp_path / "entries"
    write_entry(entries, "nearest", model_code=IDENTITY_X2, factory="model.py:NearestX2", scale=2, data_range=255.0)
    write_entry(entries, "broken", model_code=BROKEN, scale=2)
    data = tmp_path / "set"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        lr = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        hr = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1).copy()
        hr[5, 7] = 255 - hr[5, 7]  # one pixel differs, inside the border
        write_image(data / "HR" / f"{name}.png", hr)
        write_image(data / "LR_bicubic" / "X2" / f"{name}x2.png", lr)
    return entries, data


@pytest.mark.slow
def test_psnr_track_records_and_table(tiny_world: tuple[Path, Path], tmp_path: Path) -> None:
    entries, data = tiny_world
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--allow-random", "--entries", str(entries),
                                       "--entry", "nearest", "--entry", "broken", "--data", str(data), "--out",
                                       str(out), "--quiet"])
    assert result.exit_code == 1, result.output  # one entry failed
    assert "FAILED: RuntimeError: exploded" in result.output
    files = {p.name.split("__")[0]: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(files) == {"nearest", "broken"}
    rec = files["nearest"]
    assert rec["status"] == "ok" and rec["protocol"] == "challenge" and rec["device"]["kind"] == "cpu"
    # an --entries folder (not named submissions) is untrusted: jailed, never in this process
    assert rec["sandbox"] == EXPECTED_SANDBOX
    assert {"entry", "protocol", "dataset", "psnr_db", "ssim", "images", "device", "versions"} <= set(rec)
    # independent figure: each image has one wrong pixel out of (18-4)x(22-4)x3 values after the 2-px border
    for image in rec["images"]:
        hr = np.asarray(__import__("cv2").imread(str(data / "HR" / f"{image['name']}.png")))[..., ::-1]
        lr_up = np.repeat(np.repeat(hr[::2, ::2], 2, axis=0), 2, axis=1)  # what the nearest model outputs
        diff = (lr_up[2:-2, 2:-2].astype(float) - hr[2:-2, 2:-2].astype(float)) ** 2
        expected = 10 * np.log10(255 ** 2 / diff.mean())
        assert image["psnr_db"] == pytest.approx(expected, abs=1e-9)
        assert image["psnr_db"] == pytest.approx(psnr(lr_up, hr, protocol="challenge", border=2), abs=1e-9)
    assert f"{rec['psnr_db']:.3f}" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("track", ["complexity", "runtime", "overall"])
def test_efficiency_tracks_print_their_table(tiny_world: tuple[Path, Path], tmp_path: Path, track: str) -> None:
    entries, _ = tiny_world
    result = CliRunner().invoke(main, ["eval", "--track", track, "--entries", str(entries), "--entry", "nearest",
                                       "--input-shape", "1,3,16,16", "--warmup", "1", "--repeats", "2",
                                       "--out", str(tmp_path / "o"), "--quiet", "--leaderboard", "none"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("nearest"))
    if track != "runtime":
        # one 1x1 conv of 3->3 channels on 16x16: 9*256 MACs, 768 activations, 1 conv
        assert " 1 " in row and "0.0000" in row
        rec = json.loads(next((tmp_path / "o").glob("*.json")).read_text())
        assert (rec["macs_ntire2022"], rec["activations"], rec["convs"]) == (9 * 256, 3 * 256, 1)
    if track != "complexity":
        assert "(robust)" in row


def test_no_entries_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--entry", "nope", "--entries", str(tmp_path)])
    assert result.exit_code != 0 and "no entry named 'nope'" in result.output


@pytest.mark.slow
def test_sample_psnr_runs_every_esr_baseline(tmp_path: Path, weights_dir: Path) -> None:
    """The README's main command: every ESR baseline on the embedded sample, no network, no GPU."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--data", "sample", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    names = {r["entry"] for r in records}
    assert {"imdn_baseline", "imdn", "rfdn", "rlfn_ntire", "rlfn", "rlfn_s", "efdn", "span"} <= names
    for r in records:
        if r["entry"] in {"imdn", "rlfn", "rfdn", "rlfn_ntire"}:
            assert r["weights"] == "pretrained" and 24 < r["psnr_db"] < 40, r
    # entries without weights are left out (one line), bicubic is there as the reference row
    assert not names & {"rlfn_rep", "ecbsr"} and "rlfn_rep: no weights" in result.output
    assert "ecbsr: no weights" in result.output
    bicubic = next(r for r in records if r["entry"] == "bicubic")
    assert bicubic["weights"] == "none" and bicubic["reference"] is True
    table = result.output[result.output.index("entry "):]
    assert table.splitlines()[0].split()[:2] == ["entry", "weights"]
    assert any(line.split()[:2] == ["imdn", "pretrained"] for line in table.splitlines())


@pytest.mark.slow
def test_bicubic_reference_row_on_set5(set5_dir: Path, tmp_path: Path) -> None:
    """Bicubic x4 on Set5, paper protocol (Y, border 4): 28.43 dB here; SR papers' tables give 28.42 dB (EDSR,
    RCAN: MATLAB bicubic of the same LR images, their own Y/rounding details). Random-weight entries need
    --allow-random on a quality track."""
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--data", str(set5_dir), "--protocol", "paper",
                                       "--entry", "bicubic", "--entry", "rlfn_rep", "--out", str(tmp_path / "o"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "o").glob("*.json")]
    assert record["entry"] == "bicubic" and record["psnr_db"] == pytest.approx(28.42, abs=0.02)
    allowed = CliRunner().invoke(main, ["eval", "--track", "psnr", "--data", str(set5_dir), "--entry", "rlfn_rep",
                                        "--allow-random", "--out", str(tmp_path / "r"), "--quiet"])
    assert allowed.exit_code == 0 and "random" in allowed.output and "not ranked" in allowed.output


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("x265") is None, reason="x265/ffmpeg not installed")
def test_vqe_eval_runs_basicvsrpp_and_pqf_on_a_compressed_clip(tmp_path: Path, video_dir: Path) -> None:
    """The real entries (random weights) end to end on CPU: compress 3 frames, then eval --track vqe."""
    from ntirekit.data.video import read_clip

    clips = tmp_path / "clips"
    runner = CliRunner()
    made = runner.invoke(main, ["data", "compress", str(video_dir / "basicvsrpp_demo_000"), "--out", str(clips),
                                "--frames", "3", "--preset", "ultrafast"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "res"
    result = runner.invoke(main, ["eval", "--track", "vqe", "--allow-random", "--data", str(clips), "--entry", "basicvsrpp",
                                  "--entry", "pqf_basicvsrpp", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = {json.loads(p.read_text())["entry"]: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == {"basicvsrpp", "pqf_basicvsrpp"}
    # the compressed input's PSNR, computed here independently from the frames on disk
    lq = read_clip(clips / "basicvsrpp_demo_000").frames
    gt = read_clip(video_dir / "basicvsrpp_demo_000").frames[:3]
    expected = float(np.mean([psnr(a, b, protocol="challenge", border=0) for a, b in zip(lq, gt)]))
    for rec in records.values():
        assert rec["psnr_input_db"] == pytest.approx(expected, abs=1e-9)
        assert rec["delta_psnr_db"] == pytest.approx(rec["psnr_db"] - rec["psnr_input_db"], abs=1e-9)
        assert rec["runtime_ms_per_frame"] > 0 and rec["params"] > 7_000_000


def test_per_image_psnr_is_printed_on_request(tiny_world: tuple[Path, Path], tmp_path: Path) -> None:
    """--per-image: one line per image with each entry's PSNR, as test_demo.py logs them (figures of the record,
    whose per-image values the test above checks against an independent computation)."""
    entries, data = tiny_world
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--allow-random", "--entries", str(entries),
                                       "--entry", "nearest", "--data", str(data), "--out", str(out), "--quiet",
                                       "--per-image"])
    assert result.exit_code == 0, result.output
    (rec,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    lines = result.output.splitlines()
    assert any(line.split() == ["image", "nearest", "PSNR", "[dB]"] for line in lines), result.output
    for image in rec["images"]:
        assert [image["name"], f"{image['psnr_db']:.3f}"] in [line.split() for line in lines]
    plain = CliRunner().invoke(main, ["eval", "--track", "psnr", "--allow-random", "--entries", str(entries),
                                      "--entry", "nearest", "--data", str(data), "--out", str(out), "--quiet"])
    assert plain.exit_code == 0 and "nearest PSNR [dB]" not in plain.output
    wrong = CliRunner().invoke(main, ["eval", "--track", "complexity", "--per-image", "--entry", "rlfn"])
    assert wrong.exit_code != 0 and "--per-image applies to the psnr track" in wrong.output


def test_the_scored_frames_label_the_psnr_columns() -> None:
    from ntirekit.cli.eval_cmd import summary_table

    every, tenth = ({"entry": e, "status": "ok", "weights": "pretrained", "psnr_db": 24.8, "delta_psnr_db": 0.5,
                     "runtime_ms_per_frame": 1.0, "params": 1000, "frame_step": step}
                    for e, step in (("a", 1), ("b", 10)))
    header = summary_table([tenth], "vqe").splitlines()[0]
    assert "PSNR [dB] (every 10th frame)" in header and "ΔPSNR [dB] (every 10th frame)" in header
    assert "every" not in summary_table([every], "vqe").splitlines()[0]
    assert "frames scored differ by row" in summary_table([every, tenth], "vqe").splitlines()[0]


def test_profile_runtime_says_what_it_timed(tiny_world: tuple[Path, Path]) -> None:
    entries, data = tiny_world
    result = CliRunner().invoke(main, ["profile", "nearest", "--entries", str(entries), "--runtime", "--data",
                                       str(data), "--warmup", "0", "--repeats", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("Timed on"))
    # the two LR images of the fixture, 9x11 each (HxW), as written there
    assert line.split(None, 2)[2] == f"{data}: 2 LR images of size (HxW): 9x11"
