"""Optical-flow helpers: backward warping of features by a flow field, and chaining per-step flows.

Flow convention (mmediting's, which BasicVSR++ checkpoints were trained with): a flow tensor ``(N, 2, H, W)`` holds
``(dx, dy)`` in pixels; warping ``x`` by ``flow`` samples ``x`` at ``(u + dx, v + dy)`` for the output pixel ``(u, v)``.
:func:`flow_warp` takes the flow channels-last, ``(N, H, W, 2)``, exactly as upstream's ``flow_warp`` does.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def flow_warp(x: torch.Tensor, flow: torch.Tensor, interpolation: str = "bilinear", padding_mode: str = "zeros",
              align_corners: bool = True) -> torch.Tensor:
    """Sample ``x`` (N, C, H, W) at the positions displaced by ``flow`` (N, H, W, 2) in pixels (dx, dy).

    ``grid_sample`` with bilinear interpolation, zero padding and ``align_corners=True`` as upstream: pixel centres
    sit at integer coordinates, so an integer flow is an exact shift (and samples from outside the frame are zero).
    """
    if x.shape[-2:] != flow.shape[1:3] or flow.shape[-1] != 2:
        raise ValueError(f"flow {tuple(flow.shape)} does not fit features {tuple(x.shape)}: expected (N, H, W, 2)")
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    grid = torch.stack((xs, ys), dim=-1) + flow  # (N, H, W, 2) absolute positions in pixels
    gx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((gx, gy), dim=-1).to(x.dtype), mode=interpolation,
                         padding_mode=padding_mode, align_corners=align_corners)


def chain_flows(flows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Compose per-step flows ``(N, 2, H, W)`` into one flow reaching back over all of them.

    ``flows[0]`` is the flow of the first step after the key frame (it warps the key frame onto the next one); each
    further step ``r`` gives ``f = r + warp(f, r)``. With two steps this is BasicVSR++'s second-order flow
    ``flow_n1 + warp(flow_n2, flow_n1)``.
    """
    if not flows:
        raise ValueError("chain_flows needs at least one flow")
    f = flows[0]
    for r in flows[1:]:
        f = r + flow_warp(f, r.permute(0, 2, 3, 1))
    return f
