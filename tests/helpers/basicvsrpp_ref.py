"""An independent statement of BasicVSR++'s forward pass for tests, indexed the way mmediting writes it.

It uses the model's sub-modules (SPyNet, feature extractor, alignment, backbones, upsamplers) but none of the kit's
propagation code: frames and flows are indexed with upstream's ``frame_idx``/``flow_idx`` lists, features are kept
per branch in propagation order and reversed for the backward branches, and the second-order neighbour is chosen by
``key_of(direction, i, t)`` (default: ``i - 2``, plain BasicVSR++) with its flow composed step by step.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F

from ntirekit.nn.flow import flow_warp


@pytest.fixture(scope="module", autouse=False)
def one_thread() -> Iterator[None]:
    """Run a module's small-tensor tests on one CPU thread: far faster than several threads on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return flow_warp(x, flow.permute(0, 2, 3, 1))


def reference_features(model, lqs: torch.Tensor,
                       key_of: Callable[[str, int, int], int] | None = None) -> dict[str, list[torch.Tensor]]:
    """Per-frame features of the extractor (``spatial``) and of the four branches, in frame order."""
    n, t, c, h, w = lqs.shape
    if model.is_low_res_input:
        lq_small = lqs
    else:
        lq_small = F.interpolate(lqs.view(-1, c, h, w), scale_factor=0.25, mode="bicubic").view(n, t, c, h // 4,
                                                                                               w // 4)
    spatial = model.feat_extract(lqs.view(-1, c, h, w))
    spatial = spatial.view(n, t, *spatial.shape[1:])
    feats = {"spatial": [spatial[:, i] for i in range(t)]}
    hs, ws = lq_small.shape[-2:]
    a = lq_small[:, :-1].reshape(-1, c, hs, ws)
    b = lq_small[:, 1:].reshape(-1, c, hs, ws)
    flows_backward = model.spynet(a, b).view(n, t - 1, 2, hs, ws)   # frame j -> j+1
    flows_forward = model.spynet(b, a).view(n, t - 1, 2, hs, ws)    # frame j+1 -> j

    for it in (1, 2):
        for direction in ("backward", "forward"):
            module = f"{direction}_{it}"
            feats[module] = []
            flows = flows_backward if direction == "backward" else flows_forward
            frame_idx = list(range(t))
            flow_idx = list(range(-1, t - 1))
            if direction == "backward":
                frame_idx = frame_idx[::-1]
                flow_idx = frame_idx
            feat_prop = spatial.new_zeros(spatial[:, 0].shape)
            for i, idx in enumerate(frame_idx):
                feat_current = feats["spatial"][idx]
                if i > 0:
                    flow_n1 = flows[:, flow_idx[i]]
                    cond_n1 = _warp(feat_prop, flow_n1)
                    feat_n2 = torch.zeros_like(feat_prop)
                    flow_n2 = torch.zeros_like(flow_n1)
                    cond_n2 = torch.zeros_like(cond_n1)
                    if i > 1:
                        k = i - 2 if key_of is None else key_of(direction, i, t)
                        assert 0 <= k <= i - 2
                        feat_n2 = feats[module][k]
                        flow_n2 = flows[:, flow_idx[k + 1]]
                        for r in range(k + 2, i + 1):
                            step = flows[:, flow_idx[r]]
                            flow_n2 = step + _warp(flow_n2, step)
                        cond_n2 = _warp(feat_n2, flow_n2)
                    cond = torch.cat([cond_n1, feat_current, cond_n2], dim=1)
                    feat_prop = model.deform_align[module](torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1,
                                                           flow_n2)
                others = [feats[k2][idx] for k2 in feats if k2 not in ("spatial", module)]
                feat_prop = feat_prop + model.backbone[module](torch.cat([feat_current, *others, feat_prop], dim=1))
                feats[module].append(feat_prop)
            if direction == "backward":
                feats[module] = feats[module][::-1]
    return feats


def reference_forward(model, lqs: torch.Tensor,
                      key_of: Callable[[str, int, int], int] | None = None) -> torch.Tensor:
    feats = reference_features(model, lqs, key_of)
    t = lqs.shape[1]
    outputs = []
    for i in range(t):
        hr = torch.cat([feats["spatial"][i]] + [feats[k][i] for k in ("backward_1", "forward_1", "backward_2",
                                                                        "forward_2")], dim=1)
        hr = model.reconstruction(hr)
        hr = model.lrelu(model.upsample1(hr))
        hr = model.lrelu(model.upsample2(hr))
        hr = model.lrelu(model.conv_hr(hr))
        hr = model.conv_last(hr)
        base = lqs[:, i]
        if model.is_low_res_input:
            base = F.interpolate(base, scale_factor=4, mode="bilinear", align_corners=False)
        outputs.append(hr + base)
    return torch.stack(outputs, dim=1)


class CheapFlow(torch.nn.Module):
    """A stand-in for SPyNet in tests of the propagation logic: a fixed random function of (ref, supp), a few pixels
    large and different for every frame pair and direction, at a tiny fraction of SPyNet's cost."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(2, 6, 3, 3, generator=g), requires_grad=False)

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return 3.0 * torch.tanh(F.conv2d(torch.cat([ref, 2 * supp], 1), self.weight.to(ref.dtype), padding=1))


def randomise_offsets(model, scale: float = 0.05, seed: int = 0) -> None:
    """Give the (zero-initialised) last offset convs small random weights so the learned offsets and masks matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for align in model.deform_align.values():
            last = align.conv_offset[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * scale)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * scale)
