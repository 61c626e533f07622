"""RLFN with re-parameterizable 3x3 convolutions: the training form of an RLFN-family entry.

The network is RLFN (bytedance/RLFN: ``conv_1``, ``num_blocks`` residual local feature blocks, ``conv_2``, global
residual, pixel-shuffle upsampler) with every 3x3 convolution outside the ESA attention (``conv_1``, each block's
``c1_r``/``c2_r``/``c3_r``, ``conv_2`` and ``upsampler.0``) replaced by a re-parameterizable block of
:mod:`ntirekit.nn.rep`: ``rep = "conv3xc"`` (1x1 expand x``gain`` -> 3x3 -> 1x1 squeeze + 1x1 skip, SPAN-style; the
default), ``"ecb"`` (ECBSR's edge-oriented block) or ``"repvgg"`` (3x3+BN, 1x1+BN, identity BN). The ESA and the 1x1
``c5`` stay plain, and each block keeps RLFN's shared LeakyReLU(0.05) module between the convs.

``deploy=True`` builds the deploy form: each rep block is one plain 3x3 ``nn.Conv2d`` (keys ``….rep_conv.*``), so the
deploy model has exactly RLFN's convolutions, parameters and MACs for the same widths. Input range [0, 255].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import ESA, activation
from ntirekit.nn.rep import ECB, Conv3XC, RepVGGBlock, reparameterize_model


def rep_conv3x3(kind: str, in_channels: int, out_channels: int, gain: int, deploy: bool) -> nn.Module:
    """A linear (activation-free) re-parameterizable stand-in for ``nn.Conv2d(in, out, 3, padding=1)``."""
    if kind == "conv3xc":
        return Conv3XC(in_channels, out_channels, gain=gain, act=None, deploy=deploy)
    if kind == "ecb":
        return ECB(in_channels, out_channels, depth_multiplier=float(gain), act=None, deploy=deploy)
    if kind == "repvgg":
        return RepVGGBlock(in_channels, out_channels, act=None, deploy=deploy)
    raise ValueError(f"unknown rep block {kind!r} (conv3xc, ecb, repvgg)")


class RepRLFB(nn.Module):
    """RLFB with re-parameterizable 3x3 convs: ``esa(c5(act(c3(act(c2(act(c1(x)))))) + x))``."""

    def __init__(self, in_channels: int, mid_channels: int, esa_channels: int, rep: str, gain: int, deploy: bool):
        super().__init__()
        self.c1_r = rep_conv3x3(rep, in_channels, mid_channels, gain, deploy)
        self.c2_r = rep_conv3x3(rep, mid_channels, mid_channels, gain, deploy)
        self.c3_r = rep_conv3x3(rep, mid_channels, in_channels, gain, deploy)
        self.c5 = nn.Conv2d(in_channels, in_channels, 1)
        self.esa = ESA(in_channels, esa_channels, light=True)
        self.act = activation("lrelu", neg_slope=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


class RLFNRep(nn.Module):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 mid_channels: int | None = None, num_blocks: int = 6, esa_channels: int = 16, upscale: int = 4,
                 rep: str = "conv3xc", gain: int = 2, deploy: bool = False):
        super().__init__()
        mid_channels = feature_channels if mid_channels is None else mid_channels
        self.num_blocks = num_blocks
        self.conv_1 = rep_conv3x3(rep, in_channels, feature_channels, gain, deploy)
        for i in range(1, num_blocks + 1):
            self.add_module(f"block_{i}", RepRLFB(feature_channels, mid_channels, esa_channels, rep, gain, deploy))
        self.conv_2 = rep_conv3x3(rep, feature_channels, feature_channels, gain, deploy)
        self.upsampler = nn.Sequential(rep_conv3x3(rep, feature_channels, out_channels * upscale ** 2, gain, deploy),
                                       nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.conv_1(x)
        out = feature
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        return self.upsampler(self.conv_2(out) + feature)

    def reparameterize(self) -> "RLFNRep":
        """Convert every rep block into one plain 3x3 conv, in place (idempotent)."""
        return reparameterize_model(self)
