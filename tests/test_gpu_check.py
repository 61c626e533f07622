"""The prepared GPU check's CPU rehearsal: every step's command line runs, and the folder holds what it promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = ("gpu_tests", "runtime", "deform", "vqe_memory", "throughput", "regress", "graph")


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)
    summary = (out / "summary.txt").read_text()
    assert proc.returncode == 0, summary + proc.stderr
    rows = [line.split() for line in summary.splitlines() if line.split() and line.split()[0] in STEPS]
    assert [(r[0], r[1]) for r in rows] == [(s, "ok") for s in STEPS]
    for name in ("runtime", "deform", "vqe_memory", "throughput", "graph"):
        assert json.loads((out / f"{name}.json").read_text()), name
    runtime = json.loads((out / "runtime.json").read_text())
    assert set(runtime["memory_mib"]["entries"]) == {"imdn_baseline", "rfdn", "rlfn_ntire"}
    throughput = json.loads((out / "throughput.json").read_text())
    assert all(m["max_psnr_diff_db"] <= 1e-9 for m in throughput["models"].values())
    graph = json.loads((out / "graph.json").read_text())
    assert set(graph["entries"]) == {"imdn_baseline", "rfdn", "rlfn_ntire"}
    assert all(g["identical"] and g["eager_ms"] > 0 and g["graph_mib"] > 0 for g in graph["entries"].values())
    (record,) = (out / "metrics" / "dry-run").glob("rlfn_ntire__complexity__*.json")
    assert json.loads(record.read_text())["params"] > 0
    assert "torch" in (out / "env.txt").read_text()


def test_gpu_check_refuses_bad_usage() -> None:
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--bogus"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr
