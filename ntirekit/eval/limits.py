"""The limits an isolated entry runs under when none are given: memory as a share of the machine, time scaled to
the work.

**Memory** (:func:`default_memory_mb`): :data:`MEMORY_SHARE` (one half) of the machine's physical memory
(``MemTotal`` of ``/proc/meminfo``). The organizer's process watches the resident memory of the entry's whole process
tree (every descendant, :func:`tree_rss_mib`) and kills the tree when it passes the limit, on CPU and CUDA alike. An
explicit ``--memory-mb N`` is memory the evaluation may add to its start-up footprint (interpreter, torch, the
track's modules): the tree may then hold its footprint at the ready signal plus N, and the child also caps its
address space (CPU) or torch's GPU allocator (CUDA) from inside (:mod:`ntirekit.eval.isolate`).

**Time** (:func:`default_timeout_s`): :data:`TIMEOUT_BASE_S` (300 s) plus :data:`TIMEOUT_S_PER_CALL` (15 s) per
forward call the track will make: one per image (or frame) for the quality tracks; for the timing tracks the timed
calls (``images x repeats x runs`` for the robust timer, ``images x runs`` for ``ntire``), the warm-up calls, one
memory pass over the images and the counting trace. 15 s is about ten times a CPU forward of RLFN on a DIV2K-sized
LR image on a 2-core machine; the interpreter's and torch's start-up are outside it (they have their own limit).
Images are counted without decoding: the built-in timing set's size, else the image files below ``--data``.

The record of a run that a limit ended says which (``limit``: ``"time"``, ``"start-up time"``, ``"memory"``) and
the value (``limit_value``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ntirekit.data.images import IMAGE_EXTENSIONS
from ntirekit.data.timing import DIV2K_LIKE, DIV2K_LIKE_COUNT
from ntirekit.eval.track import EvalOptions, Track

MEMORY_SHARE = 0.5
TIMEOUT_BASE_S = 300.0
TIMEOUT_S_PER_CALL = 15.0


def machine_memory_mib() -> int:
    """The machine's physical memory [MiB]."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)


def default_memory_mb() -> int:
    """:data:`MEMORY_SHARE` of :func:`machine_memory_mib`."""
    return int(MEMORY_SHARE * machine_memory_mib())


def _images(options: EvalOptions) -> int:
    data = str(options.data or "")
    if data in ("", DIV2K_LIKE):
        count = DIV2K_LIKE_COUNT
    else:
        root = Path(data)
        count = sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS) if root.is_dir() else 1
    wanted = (options.extra or {}).get("images")
    return min(count, int(wanted)) if wanted else count


def forward_calls(track: Track, options: EvalOptions) -> int:
    """The forward calls ``track`` makes for one entry under ``options`` (see the module docstring)."""
    images = max(1, _images(options))
    if not track.times:
        return images
    runs = max(1, options.runs)
    timed = images * (options.repeats if options.timer == "robust" else 1) * runs
    warmup = options.warmup * runs if options.timer == "robust" else 0
    return timed + warmup + images + 1


def default_timeout_s(track: Track, options: EvalOptions) -> tuple[float, str]:
    """:data:`TIMEOUT_BASE_S` + :data:`TIMEOUT_S_PER_CALL` x :func:`forward_calls`, and the sum written out."""
    calls = forward_calls(track, options)
    seconds = TIMEOUT_BASE_S + TIMEOUT_S_PER_CALL * calls
    return seconds, f"{seconds:g} s = {TIMEOUT_BASE_S:g} s + {TIMEOUT_S_PER_CALL:g} s x {calls} forward calls"


def tree_rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` and all its descendants [MiB] (0 when it is gone)."""
    children: dict[int, list[int]] = {}
    rss_pages: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        try:
            child, parent, pages = int(stat.parent.name), int(fields[1]), int(fields[21])
        except (IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(child)
        rss_pages[child] = pages
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += rss_pages.get(p, 0)
        todo.extend(children.get(p, ()))
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def limit_fields(kind: str, value: Any) -> dict[str, Any]:
    """The record fields saying which limit ended a run."""
    return {"limit": kind, "limit_value": value}
