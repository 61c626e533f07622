"""MATLAB-exact bicubic resizing: ``imresize(img, 1/4)`` as MATLAB's ``imresize(img, 0.25, 'bicubic')`` computes it.

The recipe (MATLAB's ``imresize.m``, ``contributions()`` and ``resizeAlongDim``):

- cubic convolution kernel with a = -0.5 (Keys), support [-2, 2];
- when downscaling (scale < 1) the kernel is widened by 1/scale and scaled by ``scale`` (antialiasing);
- output pixel x (1-based) samples the input at ``u = x/scale + 0.5*(1 - 1/scale)``; the taps are the
  ``ceil(width) + 2`` integers from ``floor(u - width/2)``; each row of weights is normalised to sum to 1;
- indices outside the image are mirrored symmetrically (edge pixel repeated: ... 2 1 | 1 2 ... n | n n-1 ...);
- one 1-D pass per axis, the axis with the smaller scale (the larger reduction) first, rows first on a tie;
- integer input is rounded (half away from zero) and clipped to its dtype's range after *each* pass, as MATLAB's
  ``imresizemex`` returns the input's class; float input is computed and returned in float64.

Output size from a scale is ``ceil(scale * size)`` per axis (MATLAB's rule); from ``output_shape`` the per-axis scale
is ``out / in``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["cubic", "contributions", "imresize"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), zero outside [-2, 2]."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: per output pixel, the weights and 0-based input indices of its taps.

    Returns ``(weights, indices)``, both ``out_length x P`` (``weights`` float64, rows summing to 1; ``indices``
    already mirrored into ``[0, in_length)``). Tap columns whose weight is zero for every output pixel are dropped,
    as MATLAB does.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be positive, got in={in_length} out={out_length}")
    width = 4.0
    widen = scale < 1 and antialiasing
    if widen:
        width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]      # 1-based, may fall outside
    dist = u[:, None] - idx
    weights = scale * cubic(dist * scale) if widen else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(img: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """One 1-D pass along ``axis`` (float64 in, float64 out); taps summed in order, as MATLAB's mex does."""
    moved = np.ascontiguousarray(np.moveaxis(img, axis, 0))   # whole rows to gather: much faster
    extra = (1,) * (moved.ndim - 1)
    out = weights[:, 0].reshape(-1, *extra) * moved[indices[:, 0]]
    for p in range(1, weights.shape[1]):
        out += weights[:, p].reshape(-1, *extra) * moved[indices[:, p]]
    return np.moveaxis(out, 0, axis)


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """MATLAB's conversion of double to an integer class: round half away from zero, saturate."""
    info = np.iinfo(dtype)
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    return np.clip(rounded, info.min, info.max)


def _scales_and_shape(shape: tuple[int, int], scale: float | Sequence[float] | None,
                      output_shape: Sequence[int] | None) -> tuple[tuple[float, float], tuple[int, int]]:
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    if output_shape is not None:
        out = (int(output_shape[0]), int(output_shape[1]))
        if min(out) < 1:
            raise ValueError(f"output_shape must be positive, got {tuple(output_shape)}")
        return (out[0] / shape[0], out[1] / shape[1]), out
    if np.isscalar(scale):
        scales = (float(scale), float(scale))  # type: ignore[arg-type]
    else:
        scales = (float(scale[0]), float(scale[1]))  # type: ignore[index]
    if min(scales) <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return scales, (math.ceil(scales[0] * shape[0]), math.ceil(scales[1] * shape[1]))


def imresize(img: np.ndarray, scale: float | Sequence[float] | None = None,
             output_shape: Sequence[int] | None = None, *, antialiasing: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image exactly as MATLAB's ``imresize(img, scale, 'bicubic')`` does.

    Give either ``scale`` (one number, or ``(row_scale, col_scale)``; output size ``ceil(scale * size)``) or
    ``output_shape`` ``(H, W)``. Integer input (uint8, uint16, ...) comes back in its own dtype, rounded and clipped
    after each 1-D pass; float input comes back as float64.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {a.dtype}")
    in_shape = (a.shape[0], a.shape[1])
    scales, out_shape = _scales_and_shape(in_shape, scale, output_shape)
    integer = np.issubdtype(a.dtype, np.integer)
    out = a.astype(np.float64)
    for axis in np.argsort(scales, kind="stable"):   # the larger reduction first; rows first on a tie
        axis = int(axis)
        if out_shape[axis] == in_shape[axis] and scales[axis] == 1:
            continue                                  # identity pass (MATLAB's weights are exactly one tap of 1)
        weights, indices = contributions(in_shape[axis], out_shape[axis], scales[axis], antialiasing)
        out = _resize_axis(out, axis, weights, indices)
        if integer:
            out = _round_to(out, a.dtype)
    return out.astype(a.dtype) if integer else out
