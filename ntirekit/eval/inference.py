"""Running an image entry on one LR image: whole-image or tiled with overlap, exactly as the challenge feeds it.

Input and output conversions are the official NTIRE ESR harness's (:mod:`ntirekit.quality.convert`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ntirekit.core.errors import NtirekitError
from ntirekit.quality.convert import to_model_input, to_uint8_output


class NonFiniteOutput(NtirekitError, RuntimeError):
    """A model returned NaN or inf."""


def _check_finite(y: torch.Tensor) -> torch.Tensor:
    # numpy's single-threaded pass on the CPU: torch's threaded isfinite is ~20x slower on a loaded machine
    finite = np.isfinite(y.detach().numpy()).all() if y.device.type == "cpu" else torch.isfinite(y).all()
    if not finite:
        raise NonFiniteOutput("model output contains NaN or inf")
    return y


def tile_windows(h: int, w: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """The tiles :func:`run_tiled` runs on an ``h``x``w`` LR image: ``(t0, t1, l0, l1, top, bottom, left, right)``
    per tile (the model's input window with context, and the core it writes); one window of the whole image when
    ``tile`` is None or the image fits in one tile."""
    if tile is None or (h <= tile and w <= tile):
        return [(0, h, 0, w, 0, h, 0, w)]
    windows = []
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            windows.append((max(top - overlap, 0), min(bottom + overlap, h), max(left - overlap, 0),
                            min(right + overlap, w), top, bottom, left, right))
    return windows


def call_shapes(shape: tuple[int, ...], tile: int | None, overlap: int) -> list[tuple[int, ...]]:
    """The input shapes of the model calls :func:`run_tiled` makes for an input of ``shape`` (``1xCxHxW``)."""
    return list(dict.fromkeys((*shape[:-2], t1 - t0, l1 - l0)
                              for t0, t1, l0, l1, *_ in tile_windows(shape[-2], shape[-1], tile, overlap)))


@torch.inference_mode()
def run_tiled(model: nn.Module, x: torch.Tensor, scale: int, tile: int | None = None,
              overlap: int = 16) -> torch.Tensor:
    """``model(x)`` for a 1xCxHxW input, optionally over ``tile``x``tile`` LR tiles.

    Each tile is run with ``overlap`` LR pixels of context on every side (clipped at the image border) and only its
    core is written to the output, so tiles never blend: for models whose receptive field fits in the overlap, the
    result equals the whole-image run.
    """
    if tile is None or (x.shape[-2] <= tile and x.shape[-1] <= tile):
        return _check_finite(model(x))
    _, _, h, w = x.shape
    out: torch.Tensor | None = None
    for t0, t1, l0, l1, top, bottom, left, right in tile_windows(h, w, tile, overlap):
        y = _check_finite(model(x[..., t0:t1, l0:l1]))
        if out is None:
            out = y.new_empty(y.shape[0], y.shape[1], h * scale, w * scale)
        out[..., top * scale:bottom * scale, left * scale:right * scale] = y[
            ..., (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    assert out is not None
    return out


def upscale_image(model: nn.Module, lr: np.ndarray, *, scale: int, data_range: float,
                  device: torch.device | str = "cpu", tile: int | None = None, overlap: int = 16) -> np.ndarray:
    """The entry's SR output for one RGB uint8 LR image, as RGB uint8 (the challenge's output convention)."""
    y = run_tiled(model, to_model_input(lr, data_range, device), scale, tile, overlap)
    expected = (lr.shape[0] * scale, lr.shape[1] * scale)
    if tuple(y.shape[-2:]) != expected:
        raise RuntimeError(f"output is {tuple(y.shape[-2:])}, expected {expected} for a x{scale} model")
    return to_uint8_output(y, data_range)

