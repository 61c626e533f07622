"""One writer at a time in a results folder: an advisory lock on ``OUT/.ntirekit.lock``.

Two ``ntirekit eval`` runs into one ``--out`` at once time each other's entries (each slows the other down: the
contaminated timings would be ranked) and overwrite each other's records. :func:`hold_out_lock` takes an exclusive
``fcntl.flock`` lock on the lock file for as long as the run writes, and writes into it who holds it (pid, host,
command, since when, UTC). A second writer is refused with :class:`OutLocked`, one line naming the holder; with
``wait=True`` it waits for the lock instead, saying once whom it waits for. The kernel drops the lock when its
holder ends, however it ends (Ctrl-C, SIGKILL, a crash), so a stale lock file never blocks anyone; the file itself
stays (hidden, empty between runs, never read as a result).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from ntirekit.core.errors import NtirekitError

__all__ = ["LOCK_FILE", "OutLocked", "hold_out_lock", "holder_of", "describe_holder"]

LOCK_FILE = ".ntirekit.lock"


class OutLocked(NtirekitError):
    """The results folder is being written by another run; the message names it (one line)."""


def _command() -> str:
    argv = list(sys.argv) or ["?"]
    return " ".join([Path(argv[0]).name, *argv[1:]])


def holder_of(folder: str | os.PathLike) -> dict[str, Any]:
    """What the lock file of ``folder`` says about its holder (``{}`` when it says nothing readable)."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 1234 on host (ntirekit eval ..., since 2026-01-02 10:11:12 UTC, 42 s ago)``, or "another process"."""
    if not holder.get("pid"):
        return "another process"
    since = holder.get("since", "")
    ago = ""
    try:
        started = _dt.datetime.fromisoformat(since)
        ago = f", {(_dt.datetime.now(_dt.timezone.utc) - started).total_seconds():.0f} s ago"
        since = started.strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        pass
    return f"pid {holder['pid']} on {holder.get('host', '?')} (`{holder.get('command', '?')}`, since {since}{ago})"


@contextlib.contextmanager
def hold_out_lock(folder: str | os.PathLike, *, wait: bool = False,
                  on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the write lock of the results folder ``folder`` (created if needed) for the ``with`` block.

    Held by another process: :class:`OutLocked` naming it, or, with ``wait``, block until it is free (``on_wait`` is
    told once whom it waits for)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = describe_holder(holder_of(folder))
            if not wait:
                raise OutLocked(f"{folder.resolve()} is being written by {who}: one writer at a time (timings taken "
                                "while another run works are contaminated); wait for it (--wait), or use another "
                                "--out") from None
            if on_wait is not None:
                on_wait(f"waiting for {who} to finish writing {folder.resolve()} ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
