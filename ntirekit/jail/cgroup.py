"""Kernel limits for one jail: a cgroup of its own with a memory and a pids limit (cgroup v2, or v1 hierarchies).

:func:`create` makes ``ntirekit-<pid>-<n>`` below this process's own cgroup, where the kernel lets the kit write:

- **v2** (a ``cgroup2`` mount whose group of this process offers the ``memory`` and ``pids`` controllers to its
  children): ``memory.max`` and ``memory.swap.max = 0``, ``pids.max``; OOM kills counted in ``memory.events``.
- **v1** (``memory`` and ``pids`` hierarchies, as in hybrid set-ups): ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes`` where swap accounting exists), ``pids.max``; OOM kills in ``memory.oom_control``.

The memory limit counts everything the jail's processes charge: resident pages, page cache, and the pages of tmpfs
files and ``memfd_create`` files they write (shmem is charged to the group that touches it), so the sandbox's own
tmpfs folders are inside it. The pids limit counts processes and threads. A jail enters its cgroup before bwrap
starts (:attr:`Cgroup.procs_files`: the wrapper writes its own pid there, then execs), so every descendant is in it.
Where no cgroup can be made (no write access, controllers not delegated), :func:`create` returns None with the reason,
and the caller says which limits stay advisory.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

_COUNTER = itertools.count()
#: where cgroup file systems are mounted
_MOUNTS = Path("/proc/self/mountinfo")


@dataclass
class Cgroup:
    """A jail's cgroup: its folders (one for v2, one per controller for v1) and the version."""

    version: int
    memory_dir: Path
    pids_dir: Path
    made: list[Path] = field(default_factory=list)

    @property
    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process writes its pid to, to enter (one per hierarchy)."""
        return list(dict.fromkeys(d / "cgroup.procs" for d in (self.memory_dir, self.pids_dir)))

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version}"

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this group."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in _read(self.memory_dir / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def usage_bytes(self) -> int:
        """The memory the group holds now [bytes]."""
        text = _read(self.memory_dir / ("memory.current" if self.version == 2 else "memory.usage_in_bytes")).strip()
        return int(text) if text.isdigit() else 0

    def set_memory(self, limit_bytes: int) -> None:
        """Change the group's memory limit (swap included where the kernel accounts it)."""
        if self.version == 2:
            _write(self.memory_dir / "memory.max", str(limit_bytes))
            return
        memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
        current = int(_read(self.memory_dir / "memory.limit_in_bytes").strip() or 0)
        order = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"] if limit_bytes < current else \
            ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        for name in order:                 # v1 keeps memsw >= limit at every step
            if name == "memory.limit_in_bytes" or memsw.exists():
                _write(self.memory_dir / name, str(limit_bytes))

    def peak_mib(self) -> float | None:
        """The most memory the group held [MiB] (where the kernel says)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self.memory_dir / name).strip()
        return int(text) / 2**20 if text.isdigit() else None

    def pids(self) -> list[int]:
        """The processes in the group now."""
        return [int(p) for p in _read(self.pids_dir / "cgroup.procs").split() if p.isdigit()]

    def kill(self) -> None:
        """SIGKILL every process in the group."""
        if self.version == 2 and (self.memory_dir / "cgroup.kill").exists():
            _write(self.memory_dir / "cgroup.kill", "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self) -> None:
        """Kill what is left and remove the group's folders."""
        self.kill()
        for folder in reversed(self.made):
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill()
                    time.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _mounts() -> list[tuple[str, Path, str]]:
    """``(fs type, mount point, super options)`` of every cgroup mount of this process."""
    out = []
    for line in _read(_MOUNTS).splitlines():
        left, _, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        if len(parts) >= 5 and rest and rest[0] in ("cgroup", "cgroup2"):
            out.append((rest[0], Path(parts[4]), rest[-1] if len(rest) >= 3 else ""))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and ``""`` -> its v2 path (``/proc/self/cgroup``)."""
    paths: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _v2_parent() -> Path | None:
    own = _own_paths().get("")
    for fs, point, _ in _mounts():
        if fs == "cgroup2" and own is not None:
            folder = point / own.lstrip("/")
            enabled = _read(folder / "cgroup.subtree_control").split()
            if {"memory", "pids"} <= set(enabled) and os.access(folder, os.W_OK):
                return folder
    return None


def _v1_parent(controller: str) -> Path | None:
    own = _own_paths().get(controller)
    for fs, point, options in _mounts():
        if fs == "cgroup" and controller in options.split(",") and own is not None:
            folder = point / own.lstrip("/")
            if folder.is_dir() and os.access(folder, os.W_OK):
                return folder
    return None


def create(memory_bytes: int, pids: int) -> tuple[Cgroup | None, str]:
    """A new cgroup limited to ``memory_bytes`` and ``pids`` processes/threads, and ``""``; or ``(None, reason)``."""
    name = f"ntirekit-{os.getpid()}-{next(_COUNTER)}"
    parent = _v2_parent()
    group: Cgroup | None = None
    try:
        if parent is not None:
            folder = parent / name
            folder.mkdir()
            group = Cgroup(2, folder, folder, [folder])
            group.set_memory(memory_bytes)
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
            _write(folder / "pids.max", str(pids))
            return group, ""
        memory_parent, pids_parent = _v1_parent("memory"), _v1_parent("pids")
        if memory_parent is None or pids_parent is None:
            return None, "no cgroup (v2 with memory and pids delegated, or v1 memory and pids) this process may write"
        memory_dir, pids_dir = memory_parent / name, pids_parent / name
        memory_dir.mkdir()
        group = Cgroup(1, memory_dir, pids_dir, [memory_dir])
        pids_dir.mkdir()
        group.made.append(pids_dir)
        group.set_memory(memory_bytes)       # a new group's limit is the largest: the limit first, then memsw
        _write(pids_dir / "pids.max", str(pids))
        return group, ""
    except OSError as exc:
        if group is not None:
            group.remove()
        return None, f"cgroup set-up failed ({exc.strerror or exc})"
