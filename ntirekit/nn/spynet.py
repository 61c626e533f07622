"""SPyNet optical flow, in the form BasicVSR/BasicVSR++ use it (mmediting's ``SPyNet``).

Six pyramid levels, each a basic module of five 7x7 convolutions (8-32-64-32-16-2, ReLU between, no batch norm);
inputs are RGB in [0, 1], normalised with the ImageNet mean and std. Module and buffer names follow mmediting so that
upstream keys (``spynet.basic_module.N.basic_module.M.conv.weight``, ``spynet.mean``, ``spynet.std``) load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ntirekit.nn.flow import flow_warp

#: ImageNet RGB statistics used to normalise SPyNet's inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvAct(nn.Module):
    """A convolution followed by an optional ReLU, named like mmcv's ``ConvModule`` (``conv``, ``activate``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2)
        if relu:
            self.activate = nn.ReLU(inplace=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.activate(x) if self.relu else x


class SPyNetBasicModule(nn.Module):
    """One pyramid level: (reference, warped support, current flow) with 3 + 3 + 2 channels -> flow residue."""

    def __init__(self):
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(*(ConvAct(cin, cout, 7, relu=i < len(widths) - 2)
                                            for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Flow from ``ref`` to ``supp`` (N, 3, H, W, RGB in [0, 1]) as (N, 2, H, W) pixels, (dx, dy).

    Frames are resized (bilinear) to a multiple of 32, the flow is computed coarse to fine over six levels, then
    resized back and rescaled to the original size.
    """

    levels = 6

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList(SPyNetBasicModule() for _ in range(self.levels))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def compute_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """The flow for frames whose sides are multiples of 2**(levels-1)."""
        n, _, h, w = ref.shape
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(self.levels - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        refs, supps = refs[::-1], supps[::-1]

        scale = 2 ** (self.levels - 1)
        flow = ref.new_zeros(n, 2, h // scale, w // scale)
        for level, module in enumerate(self.basic_module):
            if level > 0:
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supps[level], flow.permute(0, 2, 3, 1), padding_mode="border")
            flow = flow + module(torch.cat([refs[level], warped, flow], dim=1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        h_up, w_up = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self.compute_flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        factor = flow.new_tensor([w / w_up, h / h_up]).view(1, 2, 1, 1)
        return flow * factor
