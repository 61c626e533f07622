"""Timing that a submission cannot fake (issue 12): the organizer's clock witnesses every timed call of an isolated
child, and a record whose timings are implausible against it is marked suspect and not ranked."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ntirekit.core.registry import discover
from ntirekit.data.images import write_image
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.witness import SLACK_MS_PER_CALL, SUSPECT_RATIO, Witness, timing_verdict
from ntirekit.rank.leaderboard import NOT_RANKED, build_leaderboard
from tests.helpers.entries import TINY_MODEL, write_entry


def _witnessed(intervals_s: list[float], junk: bytes = b"") -> Witness:
    witness = Witness()
    fd = os.dup(witness.fd)
    witness.start()
    for seconds in intervals_s:
        os.write(fd, b"+")
        time.sleep(seconds)
        os.write(fd, b"-")
    if junk:
        os.write(fd, junk)
    os.close(fd)
    witness.stop()
    return witness


def _record(total_ms: float, n: int) -> dict[str, Any]:
    return {"entry": "e", "status": "ok", "runtime_ms": {"median": total_ms / n, "total": total_ms, "n": n}}


def test_witness_times_each_call_with_its_own_clock() -> None:
    witness = _witnessed([0.05, 0.05, 0.05])
    assert witness.calls == 3 and witness.junk == 0
    assert 150 <= witness.witnessed_ms < 400


@pytest.mark.parametrize("total_ms, calls, junk, suspect", [
    (150.0, 3, b"", False),     # the honest sum: inside the witnessed intervals
    (60.0, 3, b"", True),       # claims 2.5x faster than the organizer's clock saw
    (150.0, 2, b"", True),      # reports fewer calls than were witnessed
    (150.0, 3, b"x", True),     # something else wrote to the witness
])
def test_verdict_rule(total_ms: float, calls: int, junk: bytes, suspect: bool) -> None:
    witness = _witnessed([0.05, 0.05, 0.05], junk)
    record = timing_verdict(_record(total_ms, calls), witness)
    assert record["timing_witness"]["witnessed_calls"] == 3
    assert (record["status"] == "suspect") is suspect
    if suspect:
        assert record["error"].startswith("suspect timing:")


def test_threshold_is_the_documented_one() -> None:
    witness = _witnessed([0.1])
    floor = SUSPECT_RATIO * witness.witnessed_ms - SLACK_MS_PER_CALL
    assert timing_verdict(_record(floor + 0.5, 1), witness)["status"] == "ok"
    assert timing_verdict(_record(floor - 0.5, 1), witness)["status"] == "suspect"


#: each is added to a tiny entry whose forward sleeps 40 ms; imported inside the child after the kit's modules
CLOCK_ATTACKS = {
    "c_time": '''
import time
time.perf_counter_ns = lambda: 0
time.perf_counter = lambda: 0.0
time.monotonic = lambda: 0.0
''',
    "c_kit_clock": '''
import itertools
import ntirekit.measure.runtime as runtime
_ticks = itertools.count(0, 1000)          # 1 µs per reading, whatever the forward took
runtime._perf_counter_ns = lambda: next(_ticks)
''',
    "c_stats": '''
import ntirekit.measure.runtime as runtime
_real = runtime.summarize
runtime.summarize = lambda times, timer: _real([t / 100 for t in times], timer)
''',
    "c_fields": '''
import sys
import ntirekit.core.records as records
_real = records.record
def forged(entry, track, device, **fields):
    return _real(entry, track, device, **{**fields, "psnr_db": 99.0, "options": {"chosen": "by the entry"},
                                          "timing_witness": {"witnessed_ms": 1e9}, "weights": "pretrained"})
for module in list(sys.modules.values()):
    if getattr(module, "record", None) is _real:
        module.record = forged
''',
}

SLOW_MODEL = TINY_MODEL.replace("        return self.shuffle(self.conv(x))",
                                "        import time\n        time.sleep(0.04)\n        return self.shuffle(self.conv(x))")


@pytest.fixture()
def clock_world(tmp_path: Path) -> dict[str, Any]:
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(data / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    roots = tmp_path / "entries"
    for name, attack in {"honest": "", **CLOCK_ATTACKS}.items():
        write_entry(roots, name, model_code=SLOW_MODEL + attack)
    return {"registry": discover([roots], include_defaults=False), "data": data, "out": tmp_path / "results"}


@pytest.mark.slow
def test_clock_patching_entries_are_suspect_and_not_ranked(clock_world: dict[str, Any]) -> None:
    options = EvalOptions(track="runtime", data=str(clock_world["data"]), device="cpu", progress=False, warmup=1,
                          repeats=2, extra={"fvcore": False, "memory": False})
    records = run_track(list(clock_world["registry"].values()), options, out_dir=clock_world["out"], isolate=True,
                        timeout_s=120)
    by = {r["entry"]: r for r in records}
    honest = by["honest"]
    assert honest["status"] == "ok", honest.get("error")
    assert honest["timing_witness"]["witnessed_calls"] == honest["runtime_ms"]["n"] == 4
    assert honest["runtime_ms"]["median"] >= 40
    # patching the time module after the kit bound its clocks changes nothing: the timing is the real one
    assert by["c_time"]["status"] == "ok" and by["c_time"]["runtime_ms"]["median"] >= 40
    for name in ("c_kit_clock", "c_stats"):
        rec = by[name]
        assert rec["status"] == "suspect", (name, rec.get("error"))
        assert "the organizer's clock saw" in rec["error"]
        assert rec["timing_witness"]["witnessed_ms"] >= 0.9 * 4 * 40   # 4 real sleeps; thread wake-ups jitter
    # fields the track does not declare never reach the record; the weights label and the witness are the parent's
    fields = by["c_fields"]
    assert fields["status"] == "ok" and "psnr_db" not in fields
    assert fields["options"] != {"chosen": "by the entry"} and fields["timing_witness"]["witnessed_calls"] == 4
    assert fields["weights"] == "random"
    board = build_leaderboard(records, "ntire2022", "runtime", baseline="measured", baseline_entry="honest",
                              gate="none", allow_random=True)
    rows = {row.entry: row for row in board.rows}
    assert rows["c_kit_clock"].status == NOT_RANKED and rows["c_kit_clock"].reason.startswith("suspect timing")
