""":func:`ntirekit.jail.tree.tree_usage`: the watchdog's two figures from one scan of ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from ntirekit.jail.tree import tree_pids, tree_usage


def test_tree_usage_counts_the_tree_as_the_separate_scans_do() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        rss_mib, threads = tree_usage(os.getpid())
        assert threads == len(tree_pids(os.getpid(), threads=True)) >= len(tree_pids(os.getpid())) + 1
        assert rss_mib > 1
        assert tree_usage(2**22 + 1) == (0.0, 1)          # a process that is gone: nothing resident, itself counted
    finally:
        stop.set()
        worker.join()
        child.kill()
        child.wait()
