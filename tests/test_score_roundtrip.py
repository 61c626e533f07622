"""The round trips of issue 23: what ``eval`` saves, ``pack`` zips and ``score`` scores gives ``eval``'s own PSNR per
image (ESR: three baselines on Set5 x4, both protocols) and per video (VQE: real HEVC-compressed clips, every frame
and every 10th), to 1e-9 dB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.entries import write_entry

from ntirekit.cli import main
from ntirekit.data.video import write_png_folder
from ntirekit.pack import pack
from ntirekit.pack.formats import render_readme
from ntirekit.score import score_results

TOLERANCE_DB = 1e-9
TINY_VQE = '''
import torch
from torch import nn


class TinyVQE(nn.Module):
    """A per-frame residual conv net: a real QE entry (random weights) small enough for any test."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.body = nn.Conv2d(3, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, lqs):
        n, t, c, h, w = lqs.shape
        x = lqs.reshape(n * t, c, h, w)
        return (x + 0.2 * self.tail(torch.relu(self.body(x)))).reshape(n, t, c, h, w)
'''


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def _record(results: Path, entry: str) -> dict:
    (path,) = [p for p in results.glob(f"{entry}__*.json") if not p.name.endswith("__failed.json")]
    return json.loads(path.read_text())


@pytest.mark.slow
def test_esr_eval_save_sr_pack_score_gives_evals_psnr_per_image(tmp_path, set5_dir):
    entries = ("imdn", "rlfn", "bicubic")
    worst = 0.0
    for protocol, names in (("challenge", entries), ("paper", ("bicubic",))):
        sr, results = tmp_path / f"sr_{protocol}", tmp_path / f"results_{protocol}"
        _cli("eval", "--track", "psnr", "--data", str(set5_dir), "--protocol", protocol, "--save-sr", str(sr),
             "--out", str(results), "--leaderboard", "none", "--quiet", *[a for n in names for a in ("--entry", n)])
        for name in names:
            (sr / name / "readme.txt").write_text(render_readme({"runtime_s": 0.05, "cpu": 1}, "esr-results"))
            packed = pack(sr / name, "esr-results", tmp_path / f"{name}_{protocol}.zip", data=str(set5_dir),
                          extra_data=0, description=f"{name} on Set5")
            assert packed.zip_path is not None, packed.report.render()
            outcome = score_results(packed.zip_path, set5_dir, protocol=protocol)
            assert outcome.report.ok, outcome.report.render()
            record = _record(results, name)
            evals = {i["name"]: i["psnr_db"] for i in record["images"]}
            scored = {r["name"]: r["psnr_db"] for r in outcome.scores.rows}
            assert set(scored) == set(evals) == {"baby", "bird", "butterfly", "head", "woman"}
            diffs = [abs(scored[k] - evals[k]) for k in evals]
            assert max(diffs) <= TOLERANCE_DB, (scored, evals)
            assert abs(outcome.scores.psnr_db - record["psnr_db"]) <= TOLERANCE_DB
            assert outcome.scores.readme == {"runtime_s": 0.05, "cpu": 1, "extra_data": 0,
                                             "description": f"{name} on Set5"}
            worst = max(worst, *diffs)
            print(f"{protocol:9s} {name:8s} " + " ".join(f"{k} {scored[k]:.6f}" for k in sorted(scored))
                  + f" | mean {outcome.scores.psnr_db:.6f} (eval {record['psnr_db']:.6f}), max |diff| {max(diffs):.1e}")
    print(f"largest per-image difference to eval: {worst:.1e} dB")


def _clean_clip(folder: Path, frames: int, seed: int) -> Path:
    yy, xx = np.mgrid[0:48, 0:64]
    out = []
    for i in range(frames):
        base = np.stack([128 + 60 * np.sin((xx + 2 * i + seed) / 7.0), 128 + 50 * np.cos((yy - i) / 5.0),
                         128 + 40 * np.sin((xx + yy + i) / 9.0)], -1)
        noise = np.random.default_rng(100 * seed + i).normal(0, 3, base.shape)
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return write_png_folder(out, folder) and folder


@pytest.mark.slow
def test_vqe_eval_save_frames_pack_score_gives_evals_psnr_per_video(tmp_path):
    clean = [_clean_clip(tmp_path / "clean" / name, n, seed) for name, n, seed in (("001", 20, 0), ("002", 12, 1))]
    clips = tmp_path / "clips"
    _cli("data", "compress", *map(str, clean), "--out", str(clips), "--preset", "ultrafast")   # HEVC, QP 37
    write_entry(tmp_path / "entries", "tiny_vqe", model_code=TINY_VQE, factory="model.py:TinyVQE", track="vqe",
                task="qe", scale=1)
    toml = tmp_path / "entries" / "tiny_vqe" / "entry.toml"
    toml.write_text(toml.read_text().replace("kwargs = { scale = 1 }", "kwargs = { channels = 4 }"))
    for every_10th in (False, True):
        tag = "10th" if every_10th else "all"
        out, results = tmp_path / f"frames_{tag}", tmp_path / f"results_{tag}"
        _cli("eval", "--track", "vqe", "--allow-random", "--data", str(clips), "--entries", str(tmp_path / "entries"),
             "--trust", str(tmp_path / "entries"), "--entry", "tiny_vqe", "--device", "cpu", "--save-frames",
             str(out), "--extra-data", "0", "--out", str(results), "--leaderboard", "none", "--quiet",
             *(["--every-10th"] if every_10th else []))
        packed = pack(out / "tiny_vqe", "vqe-results", tmp_path / f"up_{tag}.zip")
        assert packed.zip_path is not None, packed.report.render()
        outcome = score_results(packed.zip_path, clips, frame_step=10 if every_10th else None)
        assert outcome.report.ok, outcome.report.render()
        record = _record(results, "tiny_vqe")
        assert record["frame_step"] == outcome.scores.settings.frame_step == (10 if every_10th else 1)
        evals = {v["name"]: v["psnr_db"] for v in record["videos"]}
        scored = {r["name"]: r["psnr_db"] for r in outcome.scores.rows}
        assert set(scored) == set(evals) == {"001", "002"}
        assert [r["frames"] for r in outcome.scores.rows] == ([2, 1] if every_10th else [20, 12])
        diffs = [abs(scored[k] - evals[k]) for k in evals]
        assert max(diffs) <= TOLERANCE_DB and abs(outcome.scores.psnr_db - record["psnr_db"]) <= TOLERANCE_DB
        assert outcome.scores.readme["extra_data"] == 0 and outcome.scores.readme["cpu"] == 1
        print(f"vqe {tag:4s} " + " ".join(f"{k} {scored[k]:.6f}" for k in sorted(scored))
              + f" | mean {outcome.scores.psnr_db:.6f} (eval {record['psnr_db']:.6f}), max |diff| {max(diffs):.1e}")
    shutil.rmtree(tmp_path / "clean")
