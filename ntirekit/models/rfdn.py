"""RFDN, winner of the AIM 2020 efficient SR challenge (njulj/RFDN RFDN.py + block.py); the NTIRE 2022 baseline.

50 channels, 4 residual feature distillation blocks (RFDB: 1×1 distillation convs beside 3×3 shallow residual convs,
LeakyReLU(0.05), full ESA with 12 channels), 1×1 conv + LeakyReLU fusion, 3×3 conv with the global residual,
conv + PixelShuffle(4). Input range [0, 255].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import ESA, activation, conv_layer, pixelshuffle_block


class RFDB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.dc = in_channels // 2
        self.rc = in_channels
        self.c1_d = conv_layer(in_channels, self.dc, 1)
        self.c1_r = conv_layer(in_channels, self.rc, 3)
        self.c2_d = conv_layer(self.rc, self.dc, 1)
        self.c2_r = conv_layer(self.rc, self.rc, 3)
        self.c3_d = conv_layer(self.rc, self.dc, 1)
        self.c3_r = conv_layer(self.rc, self.rc, 3)
        self.c4 = conv_layer(self.rc, self.dc, 3)
        self.act = activation("lrelu", neg_slope=0.05)
        self.c5 = conv_layer(self.dc * 4, in_channels, 1)
        self.esa = ESA(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.act(self.c1_d(x))
        r1 = self.act(self.c1_r(x) + x)
        d2 = self.act(self.c2_d(r1))
        r2 = self.act(self.c2_r(r1) + r1)
        d3 = self.act(self.c3_d(r2))
        r3 = self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        return self.esa(self.c5(torch.cat([d1, d2, d3, r4], dim=1)))


class RFDN(nn.Module):
    def __init__(self, in_nc: int = 3, nf: int = 50, num_modules: int = 4, out_nc: int = 3, upscale: int = 4):
        super().__init__()
        self.num_modules = num_modules
        self.fea_conv = conv_layer(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            self.add_module(f"B{i}", RFDB(nf))
        self.c = nn.Sequential(conv_layer(nf * num_modules, nf, 1), activation("lrelu", neg_slope=0.05))
        self.LR_conv = conv_layer(nf, nf, 3)
        self.upsampler = pixelshuffle_block(nf, out_nc, upscale_factor=upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, out = [], fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)
