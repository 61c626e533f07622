"""Evaluation tracks: what ``ntirekit eval --track NAME`` measures.

A track is a module exposing ``evaluate(entries, options) -> Iterator[dict]`` that yields one result record per entry
(see :mod:`ntirekit.core.records`), failed entries included, as soon as each is known. The runner
(:func:`ntirekit.eval.runner.run_track`) writes each record atomically as it arrives and prints the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ntirekit.core.spec import Entry

#: track name -> (module, the entry track it applies to by default)
TRACKS: dict[str, tuple[str, str]] = {
    "psnr": ("ntirekit.eval.tracks.psnr", "esr"),
    "runtime": ("ntirekit.eval.tracks.efficiency", "esr"),
    "complexity": ("ntirekit.eval.tracks.efficiency", "esr"),
    "overall": ("ntirekit.eval.tracks.efficiency", "esr"),
    "vqe": ("ntirekit.eval.tracks.vqe", "vqe"),
}


@dataclass
class EvalOptions:
    """Everything ``eval`` can be told; each track reads the fields it needs.

    Units: times in milliseconds, memory in MiB, ``tile`` and ``tile_overlap`` in LR pixels.
    """

    track: str = "psnr"
    data: str = "sample"
    protocol: str = "challenge"          # quality protocol: challenge (RGB) | paper (Y)
    device: str = "auto"
    tile: int | None = None
    tile_overlap: int = 16
    timer: str = "robust"                # robust | ntire
    warmup: int = 3
    repeats: int = 5
    runs: int = 1
    input_shape: tuple[int, int, int, int] = (1, 3, 256, 256)
    threads: int | None = None
    weights: dict[str, str] = field(default_factory=dict)   # entry name -> explicit checkpoint
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)     # track-specific options


Evaluate = Callable[[list[Entry], EvalOptions], Iterator[dict[str, Any]]]


def track_function(track: str) -> Evaluate:
    """The ``evaluate`` function of a track, imported on demand."""
    if track not in TRACKS:
        raise KeyError(f"unknown track {track!r} (known: {', '.join(TRACKS)})")
    return importlib.import_module(TRACKS[track][0]).evaluate


def default_entry_track(track: str) -> str:
    """Which entries a track runs on when none are named (``esr`` or ``vqe``)."""
    return TRACKS[track][1]
