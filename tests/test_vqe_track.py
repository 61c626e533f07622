"""The vqe track end to end on CPU: both QE entries (random weights, tiny widths) on a tiny synthetic compressed clip
with a duplicate frame and a qp.txt, through the runner; data discovery in both layouts."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)
from helpers.entries import write_entry

from ntirekit.core.registry import BASELINES, discover
from ntirekit.data.video import write_png_folder, write_qp_file
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import TRACKS
from ntirekit.eval.tracks.vqe import VqeDataError, find_videos

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = {"mid_channels = 64, num_blocks = 7": "mid_channels = 8, num_blocks = 1",
        "num_blocks_reconstruction = 55": "num_blocks_reconstruction = 1"}


def _tiny_copy(root: Path, name: str) -> Path:
    folder = root / name
    shutil.copytree(BASELINES / name, folder)
    spec = (folder / "entry.toml").read_text()
    for old, new in TINY.items():
        spec = spec.replace(old, new)
    (folder / "entry.toml").write_text(spec)
    return folder


def _synthetic_pair(root: Path, n: int = 5, h: int = 40, w: int = 56) -> None:
    """gt/clip0: smooth moving frames; lq/clip0: the same, quantised and noisier on non-PQF frames, frame 2 a
    duplicate of frame 1 (in both), with the HM-like QPs of a PQF every 4th frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    gt, lq = [], []
    for i in range(n):
        j = 1 if i == 2 else i
        base = np.stack([128 + 60 * np.sin((xx + 3 * j) / 7.0), 128 + 60 * np.cos((yy - 2 * j) / 5.0),
                         128 + 40 * np.sin((xx + yy + j) / 9.0)], -1)
        gt.append(np.clip(base, 0, 255).astype(np.uint8))
        step = 8 if j % 4 == 0 else 24
        noisy = np.round(base / step) * step + np.random.default_rng(j).normal(0, 2 if j % 4 == 0 else 6, base.shape)
        lq.append(np.clip(noisy, 0, 255).astype(np.uint8))
    write_png_folder(gt, root / "gt" / "clip0")
    write_png_folder(lq, root / "lq" / "clip0")
    write_qp_file(root / "lq" / "clip0" / "qp.txt", [37, 45, 44, 45, 38][:n])


@pytest.mark.slow
def test_vqe_track_runs_both_entries(tmp_path):
    data = tmp_path / "data"
    _synthetic_pair(data)
    entries_root = tmp_path / "entries"
    for name in ("basicvsrpp", "pqf_basicvsrpp"):
        _tiny_copy(entries_root, name)
    write_entry(entries_root, "an_esr_entry")  # wrong track: recorded as failed, the others go on
    registry = discover([entries_root], include_defaults=False)
    entries = [registry[n] for n in ("basicvsrpp", "an_esr_entry", "pqf_basicvsrpp")]
    options = EvalOptions(track="vqe", data=str(data), device="cpu", progress=False,
                          extra={"chunk": 3, "overlap": 1, "save": str(tmp_path / "out")})
    records = run_track(entries, options, out_dir=tmp_path / "results")
    assert [r["entry"] for r in records] == ["basicvsrpp", "an_esr_entry", "pqf_basicvsrpp"]
    assert records[1]["status"] == "failed" and "esr entry" in records[1]["error"]

    for rec in (records[0], records[2]):
        assert rec["status"] == "ok", rec.get("error")
        assert rec["track"] == "vqe" and rec["weights"] == "random" and rec["frames"] == 5
        assert set(TRACKS["vqe"].record_fields) <= set(rec)          # the declared record schema
        assert math.isfinite(rec["psnr_db"]) and math.isfinite(rec["psnr_input_db"])
        assert rec["delta_psnr_db"] == pytest.approx(rec["psnr_db"] - rec["psnr_input_db"])
        assert rec["runtime_ms_per_frame"] > 0 and rec["params"] > 0 and rec["macs_per_frame"] > 0
        assert rec["macs_input"] == [256, 256]
        (video,) = rec["videos"]
        assert video["name"] == "clip0" and video["frames"] == 5 and video["unique_frames"] == 4
        assert video["size"] == [56, 40] and video["chunks"] == 2 and len(video["frame_psnr_db"]) == 5
        saved = sorted(p.name for p in (tmp_path / "out" / rec["entry"] / "clip0").iterdir())
        assert saved == ["001.png", "002.png", "003.png", "004.png", "005.png"]
    # the input PSNR is the entry-independent figure
    assert records[0]["psnr_input_db"] == records[2]["psnr_input_db"]
    # PQF-BasicVSR++ read its PQFs from qp.txt: QP 37 (I) and 38 (PQF) are frames 0 and 4
    assert records[2]["videos"][0]["pqf"] == [0, 4] and records[2]["videos"][0]["pqf_source"] == "qp.txt"
    assert records[0]["videos"][0]["pqf"] is None and records[0]["videos"][0]["pqf_source"] is None
    # the same PSNR again from the written file
    files = sorted((tmp_path / "results").glob("pqf_basicvsrpp__vqe__*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["psnr_db"] == pytest.approx(records[2]["psnr_db"])


def test_find_videos_layouts(tmp_path):
    # pairs layout
    _synthetic_pair(tmp_path / "pairs", n=2)
    (pair,) = find_videos(tmp_path / "pairs")
    assert pair.name == "clip0" and pair.lq.parent.name == "lq" and pair.gt.parent.name == "gt"
    # compressed-clip layout (what 'ntirekit data compress' writes): clip.json names the clean source
    comp = tmp_path / "clips" / "clip0"
    comp.mkdir(parents=True)
    (comp / "clip.json").write_text(json.dumps({"name": "clip0", "source": str(pair.gt), "frames": 1}))
    (found,) = find_videos(tmp_path / "clips")
    assert found.lq == comp and found.gt == pair.gt and found.gt_frames == 1
    (single,) = find_videos(comp)                                # one clip folder given directly
    assert single == found
    with pytest.raises(VqeDataError, match="needs --data"):
        find_videos("sample")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VqeDataError, match="no videos"):
        find_videos(tmp_path / "empty")
    shutil.rmtree(tmp_path / "pairs" / "gt" / "clip0")
    (tmp_path / "pairs" / "gt" / "other").mkdir()
    with pytest.raises(VqeDataError, match="no clean clip for clip0"):
        find_videos(tmp_path / "pairs")


HOSTILE_VQE = '''
import os
_found = sum(1 for top in ("{data}", "/") for root, dirs, files in os.walk(top)
             if not dirs.__setitem__(slice(None), [d for d in dirs if d not in ("proc", "sys", "dev", "usr")])
             for f in files if "gt" in root.split(os.sep))
print("GTFOUND:%d" % _found, flush=True)
'''


@pytest.mark.slow
@pytest.mark.skipif(__import__("ntirekit.jail.bwrap", fromlist=["x"]).bwrap_problem() is not None,
                    reason="no bwrap sandbox here")
def test_an_untrusted_vqe_entry_gets_compressed_frames_only_and_the_parent_scores(tmp_path):
    """Sandboxed, a VQE entry is sent the compressed frames (and qp.txt) only; its output frames come back and
    this process scores them: the record equals an in-process run's, figure for figure, and the clean frames were
    nowhere in the sandbox."""
    data = tmp_path / "data"
    _synthetic_pair(data)
    entries_root = tmp_path / "entries"
    folder = _tiny_copy(entries_root, "pqf_basicvsrpp")
    spec = (folder / "entry.toml").read_text().replace('factory = "ntirekit.models.basicvsrpp:PQFBasicVSRPlusPlus"',
                                                        'factory = "model.py:Hostile"')
    (folder / "entry.toml").write_text(spec)
    (folder / "model.py").write_text("from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus as Hostile\n"
                                     + HOSTILE_VQE.format(data=data))
    torch.manual_seed(0)
    untrained = discover([entries_root], include_defaults=False)["pqf_basicvsrpp"].load(pretrained=False)
    torch.save(untrained.state_dict(), folder / "w.pth")           # the same weights in both runs
    (folder / "entry.toml").write_text(spec + '\n[weights]\nfile = "w.pth"\n')
    entry = discover([entries_root], include_defaults=False)["pqf_basicvsrpp"]
    options = EvalOptions(track="vqe", data=str(data), device="cpu", progress=False, extra={"chunk": 3, "overlap": 1})
    reference = run_track([entry], options, isolate=False)[0]
    sandboxed = run_track([entry], options, isolate=True, timeout_s=300)[0]
    assert sandboxed["status"] == "ok", sandboxed.get("error")
    assert sandboxed["sandbox"] == "bwrap" and "GTFOUND:0" in sandboxed["output"]
    assert reference["status"] == "ok" and "GTFOUND:" not in reference.get("output", "")
    for key in ("psnr_db", "psnr_input_db", "delta_psnr_db", "frames", "params", "macs_per_frame"):
        assert sandboxed[key] == pytest.approx(reference[key], abs=1e-9), key
    assert sandboxed["videos"][0]["frame_psnr_db"] == pytest.approx(reference["videos"][0]["frame_psnr_db"], abs=1e-9)
    assert sandboxed["videos"][0]["pqf"] == [0, 4] and sandboxed["videos"][0]["name"] == "clip0"


def test_declared_weights_that_do_not_load_fail_the_entry_not_turn_random(tmp_path):
    """A quality figure of other weights means nothing: a declared checkpoint that is missing or whose sha256
    differs fails the entry with its reason (it is never replaced by random weights)."""
    data = tmp_path / "data"
    _synthetic_pair(data, n=3)
    folder = _tiny_copy(tmp_path / "entries", "basicvsrpp")
    spec = (folder / "entry.toml").read_text()
    (folder / "entry.toml").write_text(spec + '\n[weights]\nfile = "w.pth"\nsha256 = "' + "0" * 64 + '"\n')
    torch.manual_seed(0)
    torch.save(discover([tmp_path / "entries"], include_defaults=False)["basicvsrpp"].load(pretrained=False)
               .state_dict(), folder / "w.pth")
    entry = discover([tmp_path / "entries"], include_defaults=False)["basicvsrpp"]
    (rec,) = run_track([entry], EvalOptions(track="vqe", data=str(data), device="cpu", progress=False,
                                            extra={"macs": False}))
    assert rec["status"] == "failed" and "sha256" in rec["error"] and "weights" not in rec
