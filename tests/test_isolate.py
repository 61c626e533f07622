"""Jailed evaluation: entries that crash, hang, run out of memory or return NaN are recorded as failures with
their reason, and the other entries' records stay exactly what an in-process run gives (ntirekit.eval.sides,
ntirekit.jail)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ntirekit.core.records import read_result, record_path
from ntirekit.core.registry import discover
from ntirekit.core.trust import is_untrusted, mark_untrusted
from ntirekit.eval.isolate import call_isolated
from ntirekit.eval.probe import load_probe
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions, options_from_dict
from tests.helpers.entries import write_entry
from tests.helpers.sandbox import EXPECTED_SANDBOX

pytestmark = pytest.mark.slow

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
            torch.ones(2 ** 29)                          # 2 GiB written under a 256 MiB limit
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



def mode_entry(root: Path, name: str, mode: str) -> Path:
    folder = write_entry(root, name, model_code=MODES_MODEL, factory="model.py:Model")
    spec = folder / "entry.toml"
    spec.write_text(spec.read_text().replace("kwargs = { scale = 4 }", f'kwargs = {{ scale = 4, mode = "{mode}" }}'))
    return folder


COMPLEXITY = EvalOptions(track="complexity", device="cpu", progress=False, extra={"fvcore": False})


def test_failures_are_recorded_with_their_reason_and_others_stay_correct(tmp_path: Path) -> None:
    root = tmp_path / "entries"
    modes = {"a_good": "ok", "b_crash": "crash", "c_hang": "hang", "d_oom": "oom", "e_nan": "nan", "f_raise": "raise",
             "g_segv": "segv", "h_good": "ok"}
    for name, mode in modes.items():
        mode_entry(root, name, mode)
    registry = discover([root], include_defaults=False)
    out = tmp_path / "out"
    records = run_track(list(registry.values()), COMPLEXITY, out_dir=out, isolate=True, timeout_s=20, memory_mb=256)
    by = {r["entry"]: r for r in records}
    assert list(by) == list(modes)                                  # one record each, in entry order

    assert by["b_crash"]["status"] == "failed" and by["b_crash"]["failure_kind"] == "crash"
    assert "exited with status 3" in by["b_crash"]["error"]
    assert by["c_hang"]["failure_kind"] == "timeout" and "timed out after 20 s" in by["c_hang"]["error"]
    assert (by["c_hang"]["limit"], by["c_hang"]["limit_value"]) == ("time", 20)
    assert by["d_oom"]["failure_kind"] == "oom" and by["d_oom"]["error"].startswith("out of memory")
    assert by["e_nan"]["failure_kind"] == "nonfinite" and "NaN or inf" in by["e_nan"]["error"]
    assert by["f_raise"]["failure_kind"] == "error" and by["f_raise"]["error"].endswith("exploded in forward")
    assert by["g_segv"]["failure_kind"] == "crash" and "SIGSEGV" in by["g_segv"]["error"]

    reference = run_track([registry["a_good"], registry["h_good"]], COMPLEXITY, isolate=False)
    for rec, ref in zip((by["a_good"], by["h_good"]), reference):
        assert rec["status"] == "ok" and rec["sandbox"] == EXPECTED_SANDBOX and "sandbox" not in ref
        assert rec["params"] == ref["params"] == 3 * 48 * 9 + 48 and rec["macs_ntire2022"] == ref["macs_ntire2022"]
    for name in modes:                                              # every record is on disk, strict JSON
        assert read_result(record_path(out, by[name]))["status"] == by[name]["status"]


def test_untrusted_entries_run_jailed_by_default(tmp_path: Path) -> None:
    mode_entry(tmp_path / "trusted", "local", "ok")
    mode_entry(tmp_path / "zip_dest" / "sub", "remote", "ok")
    mark_untrusted(tmp_path / "zip_dest")
    registry = discover([tmp_path / "trusted", tmp_path / "zip_dest"], include_defaults=False)
    assert not is_untrusted(registry["local"].folder) and is_untrusted(registry["remote"].folder)
    by = {r["entry"]: r for r in run_track(list(registry.values()), COMPLEXITY)}
    assert "sandbox" not in by["local"] and by["remote"]["sandbox"] == EXPECTED_SANDBOX
    assert by["local"]["params"] == by["remote"]["params"]


def test_options_round_trip() -> None:
    options = EvalOptions(track="psnr", input_shape=(1, 3, 64, 64), extra={"k": [1, 2]}, tile=32)
    assert options_from_dict(dataclasses.asdict(options)) == options
    assert options_from_dict({"track": "runtime", "unknown": 1}).track == "runtime"


def test_the_load_probe_in_the_jail_says_why_an_entry_fails(tmp_path: Path) -> None:
    mode_entry(tmp_path / "e", "good", "ok")
    mode_entry(tmp_path / "e", "segv", "segv")
    registry = discover([tmp_path / "e"], include_defaults=False)
    good, segv = (call_isolated(registry[n], load_probe, timeout_s=60) for n in ("good", "segv"))
    assert good["status"] == "ok" and good["output_shape"] == [1, 3, 96, 96] and "params" not in good
    assert segv["failure_kind"] == "crash" and "SIGSEGV" in segv["error"]
    assert good["sandbox"] == EXPECTED_SANDBOX


def test_an_honest_entry_keeps_every_count_under_a_tight_memory_limit(tmp_path: Path) -> None:
    """--memory-mb 600 is added to a jail's start-up footprint (interpreter, torch): an honest entry's fvcore count
    still comes back (it came back null before, with a warning buried in the record)."""
    mode_entry(tmp_path / "subs", "team01_ok", "ok")
    mark_untrusted(tmp_path / "subs")
    entry = discover([tmp_path / "subs"], include_defaults=False)["team01_ok"]
    options = EvalOptions(track="complexity", device="cpu", progress=False)
    rec = run_track([entry], options, memory_mb=600, timeout_s=120)[0]
    assert rec["status"] == "ok", rec.get("error")
    assert rec["macs_fvcore"] == 3 * 48 * 9 * 256 * 256 and not rec["warnings"]
    assert rec["limits"]["memory_added_mib"] == 600
