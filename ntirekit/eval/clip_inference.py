"""Running a video entry over a whole clip of any length: duplicate removal, padding, chunks with overlap.

:func:`enhance_clip` takes RGB ``uint8`` frames and returns RGB ``uint8`` frames (the challenge's output convention:
clamp, scale to 255, round) and a few statistics. Steps:

1. **Duplicates** (on by default; ~30 % of the challenge's compressed videos hold consecutive byte-identical frames):
   exact duplicates of the previous frame are dropped before enhancement and get a copy of the enhanced frame before
   them afterwards (:mod:`ntirekit.data.frames`). PQF positions follow the frames that stay.
2. **Chunks**: with ``chunk=None`` the model sees the whole clip at once. With ``chunk=K`` it sees windows of at most K
   frames; each window carries up to ``overlap`` frames of context on either side of the frames it *keeps*, and the
   outputs of the context frames are discarded (never blended), so memory is bounded by K whatever the clip's length
   and a per-frame model gives exactly the whole-clip output. The last window is moved back to hold K frames.
3. **Padding**: frames are reflect-padded at the bottom and right to at least ``min_size`` pixels per side and to
   sides divisible by ``pad_to_multiple`` (BasicVSR++ in QE mode: 256 and 4), then the output is cropped back.

Models that take PQF positions (they have a ``default_pqf(n)`` method and ``forward(x, pqf=...)``, e.g.
PQF-BasicVSR++) get the positions of each window's frames, from ``pqf`` (frame indices of the whole clip, e.g.
:func:`ntirekit.data.frames.pqf_positions` of the clip's QPs) or else from the model's default pattern.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ntirekit.data.frames import drop_duplicates as _drop_duplicates
from ntirekit.data.frames import positions_after_drop, restore_duplicates
from ntirekit.eval.inference import NonFiniteOutput
from ntirekit.nn.recurrent import reflect_pad
from ntirekit.quality.convert import to_model_input, to_uint8_output


@dataclass(frozen=True)
class Window:
    """Frames ``start .. stop-1`` go through the model; the outputs of ``keep_start .. keep_stop-1`` are kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def chunk_windows(n: int, chunk: int | None = None, overlap: int = 2) -> list[Window]:
    """Windows covering ``n`` frames: their kept ranges tile ``0 .. n-1`` in order, each window is at most ``chunk``
    frames long, and every kept frame has ``overlap`` frames of context on each side unless the clip ends first."""
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got {n}")
    if chunk is None or chunk >= n:
        return [Window(0, n, 0, n)]
    if overlap < 0 or chunk <= 2 * overlap:
        raise ValueError(f"chunk ({chunk}) must exceed twice the overlap ({overlap})")
    windows = []
    keep_start = 0
    while keep_start < n:
        start = max(0, keep_start - overlap)
        stop = min(n, start + chunk)
        if stop == n:
            start = max(0, n - chunk)
        keep_stop = n if stop == n else stop - overlap
        windows.append(Window(start, stop, keep_start, keep_stop))
        keep_start = keep_stop
    return windows


def padded_size(h: int, w: int, min_size: int = 256, multiple: int = 4) -> tuple[int, int]:
    """The smallest ``(H, W)`` >= ``(h, w)`` and >= ``min_size`` with sides divisible by ``multiple``."""
    multiple = max(1, multiple)

    def side(s: int) -> int:
        s = max(s, min_size)
        return -(-s // multiple) * multiple

    return side(h), side(w)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _frames_tensor(frames: Sequence[np.ndarray], data_range: float, device: torch.device) -> torch.Tensor:
    """T frames HxWx3 uint8 -> (1, T, 3, H, W) float32 in [0, data_range] (the harness's conversion per frame)."""
    return torch.cat([to_model_input(f, data_range) for f in frames]).unsqueeze(0).to(device)


def enhance_clip(model: nn.Module, frames: Sequence[np.ndarray], *, chunk: int | None = None, overlap: int = 2,
                 pad_to_multiple: int = 4, min_size: int = 256, drop_duplicates: bool = True,
                 device: str | torch.device = "cpu", data_range: float = 1.0,
                 pqf: Sequence[int] | None = None,
                 on_frames: Callable[[int], Any] | None = None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Enhance (or upscale) a clip with a video model ``(1, T, 3, H, W) -> (1, T, 3, sH, sW)``.

    ``on_frames(k)`` (a progress bar's update) is called after each window with the number of unique frames it
    finished, outside the timed model call.

    ``model`` must already be on ``device`` and in eval mode. Returns ``(frames_out, stats)``; ``stats`` holds
    ``frames``, ``unique_frames``, ``duplicates``, ``chunks``, ``processed_frames`` (context frames included),
    ``padded_size`` ([W, H]), ``scale``, ``model_seconds`` (model calls only), ``runtime_ms_per_frame``
    (model time over the clip's frames, duplicates included), ``wall_seconds``, ``max_memory_mib`` (CUDA peak, else
    None) and ``pqf`` (positions used, or None).
    """
    device = torch.device(device)
    wall = time.perf_counter()
    n = len(frames)
    if n == 0:
        raise ValueError("the clip has no frames")
    if drop_duplicates:
        unique, index_map = _drop_duplicates(frames)
    else:
        unique, index_map = frames, list(range(n))
    h, w = np.asarray(unique[0]).shape[:2]
    ph, pw = padded_size(h, w, min_size, pad_to_multiple)

    wants_pqf = callable(getattr(model, "default_pqf", None))
    positions: list[int] | None = None
    if wants_pqf:
        positions = list(pqf) if pqf is not None else list(model.default_pqf(n))  # type: ignore[operator]
        unique_pqf = positions_after_drop(positions, index_map)
    min_frames = int(getattr(model, "min_frames", 1))

    windows = chunk_windows(len(unique), chunk, overlap)
    out_unique: list[np.ndarray] = []
    model_seconds = 0.0
    scale: int | None = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        for win in windows:
            clip = list(unique[win.start:win.stop])
            t = len(clip)
            clip += [clip[-1]] * max(0, min_frames - t)  # e.g. a one-frame clip for a model that needs two
            x = reflect_pad(_frames_tensor(clip, data_range, device), ph, pw)
            kwargs = {}
            if wants_pqf:
                kwargs["pqf"] = [p - win.start for p in unique_pqf if win.start <= p < win.stop]
            _sync(device)
            start = time.perf_counter()
            y = model(x, **kwargs)
            _sync(device)
            model_seconds += time.perf_counter() - start
            if y.dim() != 5 or y.shape[:3] != x.shape[:3]:
                raise RuntimeError(f"model returned {tuple(y.shape)} for a clip {tuple(x.shape)}")
            if scale is None:
                scale = y.shape[-1] // pw
            if tuple(y.shape[-2:]) != (ph * scale, pw * scale):
                raise RuntimeError(f"model output {tuple(y.shape[-2:])} is not a x{scale} of its input {(ph, pw)}")
            if not torch.isfinite(y).all():
                raise NonFiniteOutput("model output contains NaN or inf")
            y = y[0, win.keep_start - win.start:win.keep_stop - win.start, :, :h * scale, :w * scale]
            out_unique.extend(to_uint8_output(frame, data_range) for frame in y)
            del x, y
            if on_frames is not None:
                on_frames(win.keep_stop - win.keep_start)
    out = restore_duplicates(out_unique, index_map) if drop_duplicates else out_unique
    stats: dict[str, Any] = {
        "frames": n,
        "unique_frames": len(unique),
        "duplicates": n - len(unique),
        "chunks": len(windows),
        "processed_frames": sum(wn.stop - wn.start for wn in windows),
        "padded_size": [pw, ph],
        "scale": scale,
        "model_seconds": model_seconds,
        "runtime_ms_per_frame": 1000.0 * model_seconds / n,
        "wall_seconds": time.perf_counter() - wall,
        "max_memory_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None,
        "pqf": positions,
    }
    return out, stats
