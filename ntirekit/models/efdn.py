"""EFDN, the NTIRE 2025 Efficient SR baseline (Amazingren/NTIRE2025_ESR models/team00_EFDN.py), deploy form.

Edge-enhanced feature distillation network, 48 channels, 4 cells. The checkpoint holds the re-parameterized form: each
cell's two EDBB blocks are already fused into one 3×3 ``rep_conv`` followed by a per-channel PReLU (the same file
is ofsoundof/NTIRE2022_ESR model_zoo/team01_efdn.pth, whose models/team01_efdn.py defines this deploy form). A cell:
1×1 conv + PReLU, two fused 3×3 conv + PReLU, four 1×1 branch convs (48→24) on the input and the three
intermediate maps, a 1×1 fuse conv, full ESA, residual add. Cells are chained with 1×1 ``local_fuse`` convs
(upstream fuses ``[out2, out4]`` for the last one, kept as is). The output is clamped to [0, 1]. Input range [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import ESA, activation, pixelshuffle_block


class PointwiseConvAct(nn.Module):
    """1×1 conv then PReLU (upstream class ``conv``)."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv1x1 = nn.Conv2d(n_feats, n_feats, 1, 1, 0)
        self.act = activation("prelu", n_prelu=n_feats, neg_slope=0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1x1(x))


class EDBB_deploy(nn.Module):
    """The fused edge-enhanced diverse branch block: one 3×3 conv then PReLU."""

    def __init__(self, inp_planes: int, out_planes: int):
        super().__init__()
        self.rep_conv = nn.Conv2d(inp_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=True)
        self.act = activation("prelu", n_prelu=out_planes, neg_slope=0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.rep_conv(x))


class Cell(nn.Module):
    def __init__(self, n_feats: int = 48):
        super().__init__()
        self.conv1 = PointwiseConvAct(n_feats)
        self.conv2 = EDBB_deploy(n_feats, n_feats)
        self.conv3 = EDBB_deploy(n_feats, n_feats)
        self.fuse = nn.Conv2d(n_feats * 2, n_feats, 1, 1, 0)
        self.att = ESA(n_feats)
        self.branch = nn.ModuleList([nn.Conv2d(n_feats, n_feats // 2, 1, 1, 0) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        branches = [b(t) for b, t in zip(self.branch, (x, out1, out2, out3))]
        return self.att(self.fuse(torch.cat(branches, dim=1))) + x


class EFDN(nn.Module):
    def __init__(self, scale: int = 4, in_channels: int = 3, n_feats: int = 48, out_channels: int = 3):
        super().__init__()
        self.head = nn.Conv2d(in_channels, n_feats, 3, 1, 1)
        self.cells = nn.ModuleList([Cell(n_feats) for _ in range(4)])
        self.local_fuse = nn.ModuleList([nn.Conv2d(n_feats * 2, n_feats, 1, 1, 0) for _ in range(3)])
        self.tail = pixelshuffle_block(n_feats, out_channels, upscale_factor=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out0 = self.head(x)
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], dim=1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], dim=1)))
        out = self.local_fuse[2](torch.cat([out2, out4], dim=1)) + out0
        return self.tail(out).clamp(0, 1)
