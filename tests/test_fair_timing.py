"""Fair timing (issue 15): a team's entry and a baseline of one timing comparison are timed the same way, whatever
their trust level, and each record says how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ntirekit.core.registry import discover
from ntirekit.data.images import write_image
from ntirekit.core.trust import mark_untrusted
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from tests.helpers.entries import write_entry
from tests.helpers.sandbox import EXPECTED_SANDBOX

pytestmark = pytest.mark.slow


def test_trusted_and_untrusted_entries_are_timed_alike(tmp_path: Path) -> None:
    """Every entry's exported graph is timed in the organizer's process, interleaved with the others, whatever the
    entry's trust: the untrusted entry's code only ran in the jail to produce outputs and its graph."""
    data = tmp_path / "data"
    for i in range(2):
        write_image(data / f"{i}.png", np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    write_entry(tmp_path / "trusted", "organizer_baseline")
    write_entry(tmp_path / "untrusted", "team01")
    mark_untrusted(tmp_path / "untrusted")
    registry = discover([tmp_path / "trusted", tmp_path / "untrusted"], include_defaults=False)
    timed = EvalOptions(track="runtime", data=str(data), device="cpu", progress=False, warmup=0, repeats=1,
                        extra={"fvcore": False, "memory": False})
    records = run_track(list(registry.values()), timed, timeout_s=120)
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("error") for r in records]
    arrangements = {r["timing_arrangement"] for r in records}
    assert arrangements == {"exported graph timed in this process with 1 other entries, interleaved"}
    assert [r["measured"] for r in records] == ["graph", "graph"]
    assert "sandbox" not in records[0] and records[1]["sandbox"] == EXPECTED_SANDBOX
    assert records[0]["params"] == records[1]["params"] and records[0]["graph_id"] != records[1]["graph_id"]
    alone = run_track([registry["organizer_baseline"]], timed)
    assert alone[0]["timing_arrangement"] == "exported graph timed in this process"
