"""Isolated evaluation: entries that crash, hang, run out of memory or return NaN are recorded as failures with
their reason, and the other entries' records stay exactly what an in-process run gives."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ntirekit.core.records import read_result, record_path
from ntirekit.core.registry import discover
import importlib

from ntirekit.eval.isolate import evaluate_isolated, is_untrusted, mark_untrusted
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions, options_from_dict
from ntirekit.eval.tracks import TRACKS
from tests.helpers.entries import write_entry

pytestmark = pytest.mark.slow

#: A tiny track: one fixed random 8x8 input through the model, the output's mean and the parameter count.
TINY_TRACK = '''
import torch
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record
from ntirekit.eval.guard import guard
from ntirekit.eval.track import Track


def evaluate(entries, options):
    device = resolve_device(options.device)
    fp = fingerprint(device)
    for entry in entries:
        failed = []
        with guard(entry, options.track, fp, failed):
            model = entry.load(pretrained=False, device=device)
            torch.manual_seed(0)
            for p in model.parameters():
                torch.nn.init.normal_(p, std=0.1)
            x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                y = model(x)
            yield record(entry.name, options.track, fp, mean=float(y.double().mean()),
                         params=sum(p.numel() for p in model.parameters()))
        yield from failed


TRACKS = (Track("tinyiso", evaluate, "esr", times=False, record_fields=("mean", "params")),)
'''

#: One model class whose behaviour a keyword argument picks.
MODES_MODEL = '''
import os
import time

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, scale=4, mode="ok"):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        if self.mode == "crash":
            os._exit(3)
        if self.mode == "raise":
            raise RuntimeError("exploded in forward")
        if self.mode == "hang":
            while True:
                time.sleep(1)
        if self.mode == "oom":
            torch.empty(2 ** 33, dtype=torch.uint8)     # 8 GiB under a 256 MiB limit
        if self.mode == "hog":                           # a grandchild holds 600 MiB resident
            import subprocess, sys
            subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(600 * 2**20); time.sleep(60)"])
            time.sleep(60)
        if self.mode == "segv":
            import ctypes
            ctypes.string_at(0)
        y = self.shuffle(self.conv(x))
        if self.mode == "nan":
            y = y * float("nan")
        return y
'''


@pytest.fixture()
def tiny_track(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the tiny track as ``tinyiso`` (its module importable here and, through sys.path, in the child)."""
    module_dir = tmp_path / "trackmod"
    module_dir.mkdir()
    (module_dir / "tinyiso_track.py").write_text(TINY_TRACK)
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setitem(TRACKS, "tinyiso", importlib.import_module("tinyiso_track").TRACKS[0])
    return "tinyiso"


def mode_entry(root: Path, name: str, mode: str) -> Path:
    folder = write_entry(root, name, model_code=MODES_MODEL, factory="model.py:Model")
    spec = folder / "entry.toml"
    spec.write_text(spec.read_text().replace("kwargs = { scale = 4 }", f'kwargs = {{ scale = 4, mode = "{mode}" }}'))
    return folder


def test_failures_are_recorded_with_their_reason_and_others_stay_correct(tmp_path: Path, tiny_track: str) -> None:
    root = tmp_path / "entries"
    modes = {"a_good": "ok", "b_crash": "crash", "c_hang": "hang", "d_oom": "oom", "e_nan": "nan", "f_good": "ok"}
    for name, mode in modes.items():
        mode_entry(root, name, mode)
    registry = discover([root], include_defaults=False)
    options = EvalOptions(track=tiny_track, device="cpu", progress=False)
    out = tmp_path / "out"
    records = run_track(list(registry.values()), options, out_dir=out, isolate=True, timeout_s=3, memory_mb=256)
    by = {r["entry"]: r for r in records}
    assert list(by) == list(modes)                                  # one record each, in entry order

    assert by["b_crash"]["status"] == "failed" and by["b_crash"]["failure_kind"] == "crash"
    assert "exited with status 3" in by["b_crash"]["error"]
    assert by["c_hang"]["failure_kind"] == "timeout" and "timed out after 3 s" in by["c_hang"]["error"]
    assert (by["c_hang"]["limit"], by["c_hang"]["limit_value"]) == ("time", 3)
    assert by["d_oom"]["failure_kind"] == "oom" and by["d_oom"]["error"].startswith("out of memory (limit 256 MiB)")
    assert by["e_nan"]["failure_kind"] == "nonfinite" and "NaN or inf" in by["e_nan"]["error"]

    reference = run_track([registry["a_good"], registry["f_good"]], options, isolate=False)
    for rec, ref in zip((by["a_good"], by["f_good"]), reference):
        assert rec["status"] == "ok" and rec["isolated"] is True
        assert rec["mean"] == ref["mean"] and rec["params"] == ref["params"] == 3 * 48 * 9 + 48
    for name in modes:                                              # every record is on disk, strict JSON
        assert read_result(record_path(out, by[name]))["status"] == by[name]["status"]


def test_exception_and_segfault(tmp_path: Path, tiny_track: str) -> None:
    root = tmp_path / "entries"
    mode_entry(root, "raiser", "raise")
    mode_entry(root, "segv", "segv")
    registry = discover([root], include_defaults=False)
    options = EvalOptions(track=tiny_track, device="cpu", progress=False)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        raiser, segv = pool.map(lambda e: evaluate_isolated(e, options, timeout_s=60), registry.values())
    assert raiser["failure_kind"] == "error" and raiser["error"] == "RuntimeError: exploded in forward"
    assert segv["failure_kind"] == "crash" and "SIGSEGV" in segv["error"]


def test_untrusted_entries_run_isolated_by_default(tmp_path: Path, tiny_track: str) -> None:
    mode_entry(tmp_path / "trusted", "local", "ok")
    mode_entry(tmp_path / "zip_dest" / "sub", "remote", "ok")
    mark_untrusted(tmp_path / "zip_dest")
    registry = discover([tmp_path / "trusted", tmp_path / "zip_dest"], include_defaults=False)
    assert not is_untrusted(registry["local"]) and is_untrusted(registry["remote"])
    records = run_track(list(registry.values()), EvalOptions(track=tiny_track, device="cpu", progress=False))
    by = {r["entry"]: r for r in records}
    assert "isolated" not in by["local"] and by["remote"]["isolated"] is True
    assert by["local"]["mean"] == by["remote"]["mean"]


def test_options_round_trip() -> None:
    options = EvalOptions(track="psnr", input_shape=(1, 3, 64, 64), extra={"k": [1, 2]}, tile=32)
    assert options_from_dict(dataclasses.asdict(options)) == options
    assert options_from_dict({"track": "runtime", "unknown": 1}).track == "runtime"


def test_child_output_tail_names_the_error(tmp_path: Path, tiny_track: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_track = tmp_path / "trackmod" / "broken_track.py"
    bad_track.write_text(textwrap.dedent('''
        import sys
        from ntirekit.eval.track import Track
        def evaluate(entries, options):
            print("about to fail", flush=True)
            sys.stdout.flush()
            import os
            os._exit(7)
            yield {}
        TRACKS = (Track("broken", evaluate, "esr", times=False, record_fields=()),)
        '''))
    monkeypatch.setitem(TRACKS, "broken", importlib.import_module("broken_track").TRACKS[0])
    mode_entry(tmp_path / "e", "x", "ok")
    entry = discover([tmp_path / "e"], include_defaults=False)["x"]
    rec: dict[str, Any] = evaluate_isolated(entry, EvalOptions(track="broken", progress=False), timeout_s=60)
    assert rec["failure_kind"] == "crash"
    assert rec["error"] == "crashed: the evaluation process exited with status 7 (last output: about to fail)"


def test_default_memory_limit_counts_the_whole_process_tree(tmp_path: Path, tiny_track: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No --memory-mb: the watchdog's share-of-the-machine limit (here set to 300 MiB) ends an entry whose
    grandchild holds 600 MiB, says so in the record, and leaves no process behind."""
    import ntirekit.eval.isolate as isolate

    monkeypatch.setattr(isolate, "default_memory_mb", lambda: 300)
    mode_entry(tmp_path / "entries", "hog", "hog")
    entry = discover([tmp_path / "entries"], include_defaults=False)["hog"]
    rec = evaluate_isolated(entry, EvalOptions(track=tiny_track, device="cpu", progress=False), timeout_s=60)
    assert rec["failure_kind"] == "oom" and (rec["limit"], rec["limit_value"]) == ("memory", 300)
    assert "more than 300 MiB resident" in rec["error"]
