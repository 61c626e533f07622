"""Default limits of jailed entries: time scaled to the work, memory a share of the machine (ntirekit.eval.limits,
ntirekit.jail.tree)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ntirekit.data.images import write_image
from ntirekit.eval.limits import TIMEOUT_BASE_S, TIMEOUT_S_PER_CALL, default_timeout_s, forward_calls, jail_limits
from ntirekit.jail.run import default_memory_mb
from ntirekit.jail.tree import machine_memory_mib, tree_pids, tree_rss_mib
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import get_track


def test_time_limit_scales_with_the_calls_a_track_makes(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.zeros((16, 16, 3), np.uint8))
    psnr = EvalOptions(track="psnr", data=str(tmp_path))
    assert forward_calls(get_track("psnr"), psnr) == 3
    runtime = EvalOptions(track="runtime", data="div2k-like", warmup=3, repeats=5, runs=1)
    # the jail runs each of the 6 inputs and the counting input once: the organizer times the graph itself
    assert forward_calls(get_track("runtime"), runtime) == 6 + 1
    assert default_timeout_s(get_track("runtime"), runtime)[0] == TIMEOUT_BASE_S + TIMEOUT_S_PER_CALL * 7
    quick = EvalOptions(track="runtime", data="div2k-like", extra={"images": 2})
    assert forward_calls(get_track("runtime"), quick) == 2 + 1
    assert jail_limits(get_track("runtime"), EvalOptions(track="runtime", timeout_s=9, memory_mb=300)).time_s == 9


def test_memory_share_and_tree_rss() -> None:
    meminfo = Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]
    assert machine_memory_mib() == int(meminfo) // 1024
    assert default_memory_mb() == int(0.5 * (int(meminfo) // 1024))           # the documented half
    before = tree_rss_mib(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 * 2**20); x[::4096] = b'1' * "
                              "len(x[::4096]); time.sleep(30)"])
    try:
        grown = before
        for _ in range(100):
            time.sleep(0.1)
            grown = tree_rss_mib(os.getpid())
            if grown - before > 190:
                break
        assert grown - before > 190
        assert child.pid in tree_pids(os.getpid())
    finally:
        child.kill()
        child.wait()
