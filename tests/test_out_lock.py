"""One writer at a time in an ``eval --out`` folder: a second run says who holds it and exits, or waits (--wait)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.outlock import OutLocked, hold_out_lock

#: a second process that holds the lock of argv[1] until its stdin closes
HOLDER = ("import sys; from ntirekit.core.outlock import hold_out_lock\n"
          "with hold_out_lock(sys.argv[1]):\n"
          "    print('held', flush=True); sys.stdin.read()\n")
EVAL = ["eval", "--track", "psnr", "--entry", "bicubic", "--data", "sample", "--quiet"]


@pytest.fixture()
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path/out``: (process, out folder)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc, out
    if proc.poll() is None:
        proc.stdin.close()                                          # type: ignore[union-attr]
        proc.wait(timeout=30)


def test_a_second_writer_is_told_who_holds_the_folder_and_exits(holder) -> None:
    proc, out = holder
    result = CliRunner().invoke(main, [*EVAL, "--out", str(out)])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert f"pid {proc.pid}" in line and "-c" in line and "since" in line and "--wait" in line, result.output
    assert not list(out.glob("*.json"))                             # nothing measured, nothing written
    with pytest.raises(OutLocked, match=f"pid {proc.pid}"):
        with hold_out_lock(out):
            pass


def test_wait_waits_for_the_holder_then_runs(holder) -> None:
    proc, out = holder
    released = []

    def release() -> None:
        time.sleep(1.5)
        released.append(time.time())
        proc.stdin.close()                                          # type: ignore[union-attr]

    threading.Thread(target=release, daemon=True).start()
    result = CliRunner().invoke(main, [*EVAL, "--out", str(out), "--wait"])
    assert result.exit_code == 0, result.output
    assert f"waiting for pid {proc.pid}" in result.output
    written = list(out.glob("bicubic__psnr__*.json"))
    assert released and written                                     # it ran once the other let go, not before
    assert all(p.stat().st_mtime >= released[0] - 0.05 for p in written), (released, [p.stat().st_mtime for p in written])


def test_the_lock_goes_with_its_holder_however_it_ends(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    proc.kill()                                                     # no clean-up runs
    proc.wait(timeout=30)
    with hold_out_lock(out):                                        # not blocked by a dead holder's file
        pass
