"""SPAN, the NTIRE 2026 Efficient SR baseline and NTIRE 2024 winner, deploy form, 28 channels.

Swift parameter-free attention network (hongyuanyu/SPAN basicsr/archs/span_arch.py; Amazingren/NTIRE2026_ESR
models/team00_SPAN.py, built there as ``SPAN(3, 3, upscale=4, feature_channels=28)``).

Why upstream loads this checkpoint with ``strict=False``: the upstream ``Conv3XC`` keeps its training branches (a 1×1
shortcut ``sk`` and a 1×1→3×3→1×1 chain ``conv``) beside the merged 3×3 ``eval_conv``; the released file holds only
``*.eval_conv.*`` (44 tensors, 150,688 parameters), so every ``sk``/``conv`` key is missing and a strict load fails.
Here the deploy model simply has no training branches: each ``Conv3XC`` is one plain ``nn.Conv2d`` named
``eval_conv`` (which also keeps the 22 convs of the published count visible to the counters), nothing re-merges
weights in ``forward``, and the checkpoint loads strictly.

Input range [0, 1]; inside, ``x = (x - rgb_mean) * 255`` (``img_range``), and the output is *not* shifted back:
the network was trained to emit [0, 1] directly.
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import activation, conv_layer, pixelshuffle_block


class Conv3XC(nn.Module):
    """Deploy form of SPAN's re-parameterized conv: the merged 3×3 conv alone (key ``eval_conv``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, bias: bool = True):
        super().__init__()
        self.eval_conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_conv(x)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three convs (SiLU after the first two), gate ``sigmoid(out3) - 0.5``.

    Returns ``(out, out1, att)`` like upstream, where ``out1`` is the first conv's output *after* SiLU: upstream's
    ``act1`` is an in-place SiLU that overwrites ``out1``, SPAN's tail concatenates that tensor (``out_b5_2``) and the
    weights were trained so (returning the pre-activation tensor drops Set5 Y-PSNR from 31.74 to 16.25 dB). The
    activated tensor is returned explicitly, so the result does not hang on the ``inplace`` flag.
    """

    def __init__(self, in_channels: int, mid_channels: int | None = None, out_channels: int | None = None):
        super().__init__()
        mid_channels = in_channels if mid_channels is None else mid_channels
        out_channels = in_channels if out_channels is None else out_channels
        self.c1_r = Conv3XC(in_channels, mid_channels)
        self.c2_r = Conv3XC(mid_channels, mid_channels)
        self.c3_r = Conv3XC(mid_channels, out_channels)
        self.act1 = activation("silu", inplace=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out1_act = self.act1(self.c1_r(x))
        out3 = self.c3_r(self.act1(self.c2_r(out1_act)))
        sim_att = torch.sigmoid(out3) - 0.5
        return (out3 + x) * sim_att, out1_act, sim_att


class SPAN(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48, upscale: int = 4,
                 img_range: float = 255.0, rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)):
        super().__init__()
        self.img_range = img_range
        # A buffer so that it follows .to(device); not persistent: upstream's mean is no checkpoint key.
        self.register_buffer("mean", torch.tensor(rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = Conv3XC(num_in_ch, feature_channels)
        for i in range(1, 7):
            self.add_module(f"block_{i}", SPAB(feature_channels))
        self.conv_cat = conv_layer(feature_channels * 4, feature_channels, 1)
        self.conv_2 = Conv3XC(feature_channels, feature_channels)
        self.upsampler = pixelshuffle_block(feature_channels, num_out_ch, upscale_factor=upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.to(x.dtype)) * self.img_range
        out_feature = self.conv_1(x)
        out_b1, _, _ = self.block_1(out_feature)
        out = out_b1
        for i in range(2, 6):
            out, _, _ = getattr(self, f"block_{i}")(out)
        out_b6, out_b5_2, _ = self.block_6(out)
        out_b6 = self.conv_2(out_b6)
        return self.upsampler(self.conv_cat(torch.cat([out_feature, out_b6, out_b1, out_b5_2], dim=1)))
