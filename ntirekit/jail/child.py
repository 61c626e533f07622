"""The jail's child: ``python -m ntirekit.jail.child`` (started by :class:`ntirekit.jail.run.Jail`, nowhere else).

It takes the channel from its standard input and output and points its own ``stdout`` at ``stderr`` (the bounded
capture), so a print can never corrupt the conversation; reads the call and the entry's files (written below the
jail's ``/entry`` tmpfs, or a private folder in a plain child process); turns off core dumps; imports the kit function
named (``ntirekit.`` only); says ``ready``; runs ``function(channel, folder=..., **kwargs)``; and ends with a
``done`` message (the function's JSON result) or an ``error`` message (one line). From the ready message on, this
process may run team code (:func:`ntirekit.core.trust.enter_jail`).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from ntirekit.core.trust import enter_jail
from ntirekit.jail.channel import Channel


def _channel() -> Channel:
    read_fd, write_fd = os.dup(0), os.dup(1)
    os.set_inheritable(read_fd, False)
    os.set_inheritable(write_fd, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)                      # print() goes to the captured output, never to the channel
    return Channel(read_fd, write_fd)


def _receive_files(channel: Any, names: list[str], folder: Path) -> None:
    wanted = set(names)
    while wanted:
        header, payload = channel.receive(payload_limit=1 << 25)
        rel = PurePosixPath(str(header.get("path", "")))
        if header.get("kind") != "file" or rel.is_absolute() or ".." in rel.parts or str(rel) not in wanted:
            raise RuntimeError("the jail got a file message it did not expect")
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab" if header.get("part") else "wb") as f:
            f.write(payload)
        if header.get("last"):
            wanted.discard(str(rel))


def kit_function(call: str) -> Callable[..., Any]:
    """The kit function ``call`` names (``"ntirekit.module:function"``); a name outside the kit is refused."""
    module_name, _, attr = call.partition(":")
    if not module_name.startswith("ntirekit."):
        raise RuntimeError(f"the jail runs kit functions only, not {call!r}")
    return getattr(importlib.import_module(module_name), attr)


def main() -> int:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))          # no core dumps from crashing entries
    except (ImportError, ValueError, OSError):
        pass
    channel = _channel()
    request, _ = channel.receive()
    call = str(request.get("call", ""))
    try:
        folder = Path(request["entry"]) if request.get("entry") else Path(tempfile.mkdtemp(prefix="entry-"))
        _receive_files(channel, list(request.get("files", [])), folder)
        function = kit_function(call)
        enter_jail()
    except BaseException as exc:  # noqa: BLE001 - the parent gets one line, whatever went wrong
        channel.send({"kind": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1
    channel.send({"kind": "ready"})
    try:
        result = function(channel, folder=str(folder), **request.get("kwargs", {}))
    except BaseException as exc:  # noqa: BLE001 - an entry's failure is a message, not a crash
        try:
            channel.send({"kind": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        except Exception:  # noqa: BLE001 - the parent has gone
            pass
        return 1
    channel.send({"kind": "done", "result": result if isinstance(result, dict) else {}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
