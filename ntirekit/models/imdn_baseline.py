"""IMDN baseline of the NTIRE 2022 Efficient SR challenge (ofsoundof/NTIRE2022_ESR models/imdn_baseline.py).

The KAIR-style simplified IMDN: 64 channels, 8 IMDBlocks without channel attention, LeakyReLU(0.05) modules after
conv1..conv3 of each block, a global residual around the body, conv + PixelShuffle(4). Keys follow the KAIR
``sequential`` layout: ``model.0`` (head), ``model.1.sub.{0..7}`` (blocks), ``model.1.sub.8`` (body conv), ``model.2``
(upsampling conv; ``model.3`` is the parameter-free PixelShuffle). Input range [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import ShortcutBlock, activation, conv_layer, pixelshuffle_block


def _conv_act(in_channels: int, out_channels: int, neg_slope: float) -> nn.Sequential:
    """KAIR ``conv(mode='CL')``: conv then LeakyReLU, keys ``0.weight``/``0.bias``."""
    return nn.Sequential(conv_layer(in_channels, out_channels, 3), activation("lrelu", neg_slope=neg_slope))


class IMDBlock(nn.Module):
    """``x + conv1x1(cat(d1, d2, d3, d4))``: three conv+LeakyReLU distillation steps (keep 1/4, refine 3/4), a conv."""

    def __init__(self, channels: int = 64, d_rate: float = 0.25, neg_slope: float = 0.05):
        super().__init__()
        self.d_nc = int(channels * d_rate)
        self.r_nc = channels - self.d_nc
        self.conv1 = _conv_act(channels, channels, neg_slope)
        self.conv2 = _conv_act(self.r_nc, channels, neg_slope)
        self.conv3 = _conv_act(self.r_nc, channels, neg_slope)
        self.conv4 = conv_layer(self.r_nc, self.d_nc, 3)
        self.conv1x1 = conv_layer(self.d_nc * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.d_nc, self.r_nc)
        d1, r1 = torch.split(self.conv1(x), split, dim=1)
        d2, r2 = torch.split(self.conv2(r1), split, dim=1)
        d3, r3 = torch.split(self.conv3(r2), split, dim=1)
        return x + self.conv1x1(torch.cat((d1, d2, d3, self.conv4(r3)), dim=1))


class IMDN(nn.Module):
    def __init__(self, in_nc: int = 3, out_nc: int = 3, nc: int = 64, nb: int = 8, upscale: int = 4,
                 negative_slope: float = 0.05):
        super().__init__()
        body = [IMDBlock(nc, neg_slope=negative_slope) for _ in range(nb)] + [conv_layer(nc, nc, 3)]
        self.model = nn.Sequential(conv_layer(in_nc, nc, 3), ShortcutBlock(nn.Sequential(*body)),
                                   *pixelshuffle_block(nc, out_nc, upscale_factor=upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
