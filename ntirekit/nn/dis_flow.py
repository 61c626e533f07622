"""OpenCV's DIS optical flow as a flow source for the recurrent video networks (no pretrained flow network needed).

DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016) is OpenCV's
``cv2.DISOpticalFlow``: a classical, non-learned, CPU-fast dense flow. It is what a kit without pretrained SPyNet
weights (none can be downloaded offline) can align frames with: flows are computed from the frames themselves, once
per clip, and are not trained.

Conventions (those of :func:`ntirekit.nn.flow.flow_warp` and of SPyNet in :mod:`ntirekit.nn.recurrent`):

- flows are ``(dx, dy)`` in pixels; ``flow_between(ref, supp)`` is defined on ``ref``'s grid and points into
  ``supp``, so ``flow_warp(supp, flow)`` approximates ``ref``. (OpenCV's ``calc(I0, I1)`` gives ``I0(x) ~ I1(x +
  flow(x))``: the same convention with ``I0 = ref``.)
- :func:`clip_flows` gives ``(forward, backward)``, each ``T-1 x H x W x 2`` float32 at the frames' size:
  ``backward[i]`` warps frame i+1 onto frame i, ``forward[i]`` warps frame i onto frame i+1 (the layout of
  :func:`ntirekit.nn.recurrent.bidirectional_flows`).
- DIS runs on the luma of the RGB uint8 frames (BT.601, OpenCV's ``COLOR_RGB2GRAY``) with the ``MEDIUM`` preset.
- :func:`downscale_flow` brings a full-size flow to the 1/k feature grid of the QE networks: the mean over each
  ``k x k`` block, divided by ``k`` (displacements shrink with the grid).
- :func:`augment_flows` and :func:`reverse_flows` transform flows along with the frames they belong to (flips,
  quarter turns, reversed frame order), so cached flows serve augmented training sequences.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DIS_PRESET", "flow_between", "clip_flows", "tensor_clip_flows", "downscale_flow", "augment_flows",
           "reverse_flows"]

#: OpenCV DIS preset used everywhere (train and inference must agree)
DIS_PRESET = "MEDIUM"


def _dis() -> "cv2.DISOpticalFlow":
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{DIS_PRESET}"))


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"DIS flow needs RGB uint8 HxWx3 frames, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def flow_between(ref: np.ndarray, supp: np.ndarray) -> np.ndarray:
    """``H x W x 2`` float32 flow on ``ref``'s grid pointing into ``supp`` (RGB uint8 frames of one size)."""
    if ref.shape != supp.shape:
        raise ValueError(f"frames differ in size: {ref.shape} vs {supp.shape}")
    return _dis().calc(_gray(ref), _gray(supp), None).astype(np.float32)


def clip_flows(frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(forward, backward)`` flows of a clip of RGB uint8 frames, each ``T-1 x H x W x 2`` float32."""
    grays = [_gray(f) for f in frames]
    if len(grays) < 2:
        raise ValueError(f"a clip needs at least 2 frames for flows, got {len(grays)}")
    dis = _dis()
    h, w = grays[0].shape
    forward = np.empty((len(grays) - 1, h, w, 2), np.float32)
    backward = np.empty_like(forward)
    for i in range(len(grays) - 1):
        backward[i] = dis.calc(grays[i], grays[i + 1], None)
        forward[i] = dis.calc(grays[i + 1], grays[i], None)
    return forward, backward


def tensor_clip_flows(lqs: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """DIS flows of a clip tensor ``(N, T, 3, H, W)`` in ``[0, data_range]``: ``(forward, backward)``, each
    ``(N, T-1, 2, H, W)`` (the frames are rounded to uint8 first, so a clip read from PNGs gives its cached flows)."""
    frames = (lqs.detach().float() * (255.0 / data_range)).round().clamp(0, 255).to(torch.uint8)
    frames = frames.permute(0, 1, 3, 4, 2).cpu().numpy()
    pairs = [clip_flows(list(clip)) for clip in frames]
    fwd = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 1, 4, 2, 3)
    bwd = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 1, 4, 2, 3)
    return fwd.to(lqs.device, lqs.dtype), bwd.to(lqs.device, lqs.dtype)


def downscale_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """A flow ``(..., 2, H, W)`` on a grid ``factor`` times coarser: block means divided by ``factor`` (sides must
    divide by ``factor``)."""
    if factor == 1:
        return flow
    lead, (h, w) = flow.shape[:-2], flow.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"flow sides {w}x{h} must be multiples of {factor}")
    small = F.avg_pool2d(flow.reshape(-1, 1, h, w), factor) / factor
    return small.reshape(*lead, h // factor, w // factor)


def augment_flows(flows: np.ndarray, k: int) -> np.ndarray:
    """Flows ``T x H x W x 2`` of frames transformed by :func:`ntirekit.train.video.augment_sequence` with ``k``:
    horizontal flip if ``k & 1`` (dx negated), then ``k >> 1`` counter-clockwise quarter turns (``np.rot90``; each
    maps a displacement ``(dx, dy)`` to ``(dy, -dx)``)."""
    if k & 1:
        flows = flows[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)
    for _ in range(k >> 1):
        flows = np.rot90(flows, 1, axes=(1, 2))[..., ::-1] * np.array([1.0, -1.0], np.float32)
    return flows


def reverse_flows(forward: np.ndarray, backward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(forward, backward)`` of the same frames in reverse order: the old backward flows, reversed, become the
    forward ones and vice versa."""
    return backward[::-1], forward[::-1]
