"""The limits a jailed entry runs under when none are given: time scaled to the work, memory a share of the machine.

**Time** (:func:`default_timeout_s`): :data:`TIMEOUT_BASE_S` (300 s) plus :data:`TIMEOUT_S_PER_CALL` (15 s) per
forward call the track will make: one per image (or frame) for the quality tracks; for the timing tracks one per
timing input and the counting input (the organizer times the exported graph itself, outside the jail). 15 s is about
ten times a CPU forward of RLFN on a DIV2K-sized LR image on a 2-core machine; the interpreter's and torch's start-up
are outside it (they have their own limit). Images are counted without decoding: the built-in timing set's size, else
the image files below ``--data``.

**Memory**: everything a jail holds (its processes and their tmpfs and memfd files) stays under half the machine
(:func:`ntirekit.jail.run.default_memory_mb`) and, with ``--memory-mb N``, under its start-up footprint plus N.
**Processes**: :data:`PIDS` processes and threads.

The record of a run that a limit ended says which (``limit``: ``"time"``, ``"start-up time"``, ``"memory"``,
``"pids"``) and the value (``limit_value``); every jailed record says how each limit was enforced (``limits``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from ntirekit.data.images import IMAGE_EXTENSIONS
from ntirekit.data.timing import DIV2K_LIKE, DIV2K_LIKE_COUNT
from ntirekit.eval.track import EvalOptions, Track
from ntirekit.jail.run import Limits

TIMEOUT_BASE_S = 300.0
TIMEOUT_S_PER_CALL = 15.0
PIDS = 512


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
    """The forward calls an entry's jail makes for ``track`` under ``options`` (see the module docstring)."""
    return max(1, _images(options)) + (1 if track.times or track.name == "complexity" else 0)


def default_timeout_s(track: Track, options: EvalOptions) -> tuple[float, str]:
    """:data:`TIMEOUT_BASE_S` + :data:`TIMEOUT_S_PER_CALL` x :func:`forward_calls`, and the sum written out."""
    calls = forward_calls(track, options)
    seconds = TIMEOUT_BASE_S + TIMEOUT_S_PER_CALL * calls
    return seconds, f"{seconds:g} s = {TIMEOUT_BASE_S:g} s + {TIMEOUT_S_PER_CALL:g} s x {calls} forward calls"


def jail_limits(track: Track, options: EvalOptions) -> Limits:
    """The jail limits of ``track`` under ``options`` (``--timeout``, ``--memory-mb``, else the defaults)."""
    seconds = options.timeout_s or default_timeout_s(track, options)[0]
    return Limits(time_s=float(seconds), memory_mb=int(options.memory_mb) if options.memory_mb else None, pids=PIDS)


def run_limits(track: Track, options: EvalOptions) -> Callable[[], Limits]:
    """:func:`jail_limits` for one run of ``track`` (the same for every entry): computed when first asked for and
    kept, so ``--data`` is walked once per run, not once per entry (a failure is not kept: each entry that asks
    gets it)."""
    return functools.cache(lambda: jail_limits(track, options))
