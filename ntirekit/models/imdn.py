"""IMDN, the original x4 model (Zheng222/IMDN model/architecture.py + block.py; AIM 2019 constrained-SR winner).

64 channels, 6 IMDModules with contrast-aware channel attention (CCA), a 1×1 conv + LeakyReLU fusing the six block
outputs, a 3×3 conv with the global residual, conv + PixelShuffle(4). The checkpoint's keys carry ``module.``
(DataParallel), which the kit strips. Input range [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import CCALayer, activation, conv_layer, pixelshuffle_block


class IMDModule(nn.Module):
    """Information multi-distillation module: conv+act, keep 1/4 of the channels, refine the rest (x3), CCA, 1×1."""

    def __init__(self, in_channels: int, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled_channels = int(in_channels * distillation_rate)
        self.remaining_channels = in_channels - self.distilled_channels
        self.c1 = conv_layer(in_channels, in_channels, 3)
        self.c2 = conv_layer(self.remaining_channels, in_channels, 3)
        self.c3 = conv_layer(self.remaining_channels, in_channels, 3)
        self.c4 = conv_layer(self.remaining_channels, self.distilled_channels, 3)
        self.act = activation("lrelu", neg_slope=0.05)
        self.c5 = conv_layer(in_channels, in_channels, 1)
        self.cca = CCALayer(self.distilled_channels * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled_channels, self.remaining_channels)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r3)], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    def __init__(self, in_nc: int = 3, nf: int = 64, num_modules: int = 6, out_nc: int = 3, upscale: int = 4):
        super().__init__()
        self.num_modules = num_modules
        self.fea_conv = conv_layer(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            self.add_module(f"IMDB{i}", IMDModule(nf))
        self.c = nn.Sequential(conv_layer(nf * num_modules, nf, 1), activation("lrelu", neg_slope=0.05))
        self.LR_conv = conv_layer(nf, nf, 3)
        self.upsampler = pixelshuffle_block(nf, out_nc, upscale_factor=upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, out = [], fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"IMDB{i}")(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)
