"""A process tree seen from ``/proc``: its members, their resident memory, and the machine's memory.

Used where no cgroup can be made for a jail: the watchdog then polls the tree (advisory limits: memory held in tmpfs
or ``memfd`` files and processes that leave the tree are not seen).
"""

from __future__ import annotations

import os
from pathlib import Path


def machine_memory_mib() -> int:
    """The machine's physical memory [MiB] (``MemTotal`` of ``/proc/meminfo``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)


def _processes() -> tuple[dict[int, list[int]], dict[int, int], dict[int, int]]:
    """``(children by parent, resident pages, threads)`` of every process."""
    children: dict[int, list[int]] = {}
    rss_pages: dict[int, int] = {}
    threads: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        try:
            pid, parent, pages, count = int(stat.parent.name), int(fields[1]), int(fields[21]), int(fields[17])
        except (IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(pid)
        rss_pages[pid] = pages
        threads[pid] = count
    return children, rss_pages, threads


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo, seen = [], [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_usage(pid: int) -> tuple[float, int]:
    """``(resident memory [MiB], threads)`` of process ``pid`` and all its descendants, from one scan of ``/proc``:
    :func:`tree_rss_mib` and ``len(tree_pids(pid, threads=True))`` (what the watchdog polls without a cgroup)."""
    children, rss_pages, counts = _processes()
    tree = _tree(pid, children)
    rss_mib = sum(rss_pages.get(p, 0) for p in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return rss_mib, sum(max(1, counts.get(p, 1)) for p in tree if p in counts or p == pid)


def tree_pids(pid: int, threads: bool = False) -> list[int]:
    """Process ``pid`` and its descendants (with ``threads``, one item per thread, as a pids limit counts)."""
    children, _, counts = _processes()
    members = [p for p in _tree(pid, children) if p in counts or p == pid]
    if not threads:
        return members
    return [p for p in members for _ in range(max(1, counts.get(p, 1)))]


def tree_rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` and all its descendants [MiB] (0 when it is gone)."""
    children, rss_pages, _ = _processes()
    return sum(rss_pages.get(p, 0) for p in _tree(pid, children)) * os.sysconf("SC_PAGE_SIZE") / 2**20
