"""Blocks shared by the video networks (BasicVSR, IconVSR, BasicVSR++, PQF-BasicVSR++, EDVR), as mmediting names them.

:class:`ResidualBlockNoBN`, :class:`ResidualBlocksWithInputConv` (keys ``main.*``) and :class:`PixelShufflePack`
(key ``upsample_conv``) follow ``mmedit/models/common``; :class:`X4Head` is the reconstruction tail those networks
share (``upsample1``, ``upsample2``, ``conv_hr``, ``conv_last``, ``img_upsample``), and :func:`bidirectional_flows`
their SPyNet flows between neighbouring frames; :func:`check_clip`, :func:`reflect_pad` and :func:`pad_frames` check
and pad clips. Conventions: clips (N, T, 3, H, W), features (N, C, h, w); LeakyReLU slope 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResidualBlockNoBN", "ResidualBlocksWithInputConv", "PixelShufflePack", "X4Head", "bidirectional_flows",
           "check_clip", "reflect_pad", "pad_frames"]


class ResidualBlockNoBN(nn.Module):
    """``x + conv2(relu(conv1(x)))`` (mmediting's block; convs initialised with 0.1-scaled Kaiming normal)."""

    def __init__(self, mid_channels: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class ResidualBlocksWithInputConv(nn.Module):
    """A 3x3 conv to ``out_channels`` with LeakyReLU(0.1), then ``num_blocks`` residual blocks (keys ``main.*``)."""

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Sequential(*(ResidualBlockNoBN(out_channels) for _ in range(num_blocks))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class PixelShufflePack(nn.Module):
    """A conv to ``out_channels * scale**2`` then pixel shuffle (key ``upsample_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, upsample_kernel: int = 3):
        super().__init__()
        self.scale_factor = scale_factor
        self.upsample_conv = nn.Conv2d(in_channels, out_channels * scale_factor ** 2, upsample_kernel, 1,
                                       (upsample_kernel - 1) // 2)
        nn.init.kaiming_normal_(self.upsample_conv.weight)
        nn.init.zeros_(self.upsample_conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), self.scale_factor)


class X4Head:
    """Mixin for an ``nn.Module`` with ``is_low_res_input`` and ``lrelu`` (LeakyReLU 0.1): upstream's x4 tail.

    :meth:`add_x4_head` registers ``upsample1``, ``upsample2`` (x2 pixel shuffles), ``conv_hr``, ``conv_last`` and
    ``img_upsample`` (bilinear x4) on the module itself, so their keys are upstream's top-level ones.
    """

    is_low_res_input: bool
    lrelu: nn.Module

    def add_x4_head(self, mid_channels: int, hr_channels: int = 64, hr_blocks: int = 0,
                    hr_frame_input: bool = False) -> None:
        """``hr_channels``: width of the full-size layers (``upsample2``'s output, ``conv_hr``; 64 upstream);
        ``hr_blocks``: residual blocks at full size after ``conv_hr`` (keys ``hr_body.*``; none upstream);
        ``hr_frame_input``: ``conv_hr`` also sees the frame at full size (3 more input channels; not upstream), so
        the full-size layers work on the pixels and not only on what the coarse features kept of them."""
        self.hr_frame_input = hr_frame_input
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(mid_channels, hr_channels, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(hr_channels + (3 if hr_frame_input else 0), hr_channels, 3, 1, 1)
        if hr_blocks:
            self.hr_body = nn.Sequential(*(ResidualBlockNoBN(hr_channels) for _ in range(hr_blocks)))
        self.conv_last = nn.Conv2d(hr_channels, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)

    def x4_head(self, feat: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """x4 upsampling of a feature (N, C, h, w), plus its frame: bilinearly upsampled x4 for low-resolution input,
        as is otherwise (the QE forms, whose features sit at 1/4 of the frame's size)."""
        base = self.img_upsample(frame) if self.is_low_res_input else frame
        out = self.lrelu(self.upsample1(feat))
        out = self.lrelu(self.upsample2(out))
        if getattr(self, "hr_frame_input", False):
            out = torch.cat([out, base], dim=1)
        out = self.lrelu(self.conv_hr(out))
        if hasattr(self, "hr_body"):
            out = self.hr_body(out)
        return self.conv_last(out) + base


def bidirectional_flows(spynet: nn.Module, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flows_forward, flows_backward)`` of a clip (N, T, C, h, w), each (N, T-1, 2, h, w) in pixels (dx, dy):
    ``flows_backward[:, i]`` warps frame i+1 onto frame i, ``flows_forward[:, i]`` frame i onto frame i+1."""
    n, t, c, h, w = lqs.shape
    lqs_1 = lqs[:, :-1].reshape(-1, c, h, w)
    lqs_2 = lqs[:, 1:].reshape(-1, c, h, w)
    flows_backward = spynet(lqs_1, lqs_2).view(n, t - 1, 2, h, w)
    flows_forward = spynet(lqs_2, lqs_1).view(n, t - 1, 2, h, w)
    return flows_forward, flows_backward


def check_clip(lqs: torch.Tensor, min_frames: int, min_size: int, name: str) -> None:
    """Raise a one-line ``ValueError`` unless ``lqs`` is a clip (N, T, 3, H, W) of at least ``min_frames`` frames
    whose sides are at least ``min_size`` pixels."""
    if lqs.dim() != 5 or lqs.shape[2] != 3:
        raise ValueError(f"{name} expects a clip (N, T, 3, H, W), got {tuple(lqs.shape)}")
    if lqs.shape[1] < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames, got {lqs.shape[1]}")
    h, w = lqs.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(f"{name} needs frames of at least {min_size}x{min_size}, got {w}x{h} (pad the frames)")


def reflect_pad(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad (..., h, w) at the bottom and right to (height, width); pads longer than the frame reflect again
    (a side of one pixel is repeated)."""
    lead = x.shape[:-2]
    x = x.reshape(-1, 1, *x.shape[-2:])
    while x.shape[-2] < height or x.shape[-1] < width:
        h, w = x.shape[-2:]
        ph, pw = min(height - h, max(h - 1, 0)), min(width - w, max(w - 1, 0))
        if ph == 0 and pw == 0:  # a side of one pixel cannot reflect: repeat it
            x = F.pad(x, (0, width - w, 0, height - h), mode="replicate")
            break
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x.reshape(*lead, height, width)


def pad_frames(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (..., H, W) at the bottom and right so both sides divide by ``multiple`` (no-op if they do)."""
    h, w = x.shape[-2:]
    return reflect_pad(x, h + -h % multiple, w + -w % multiple)
