"""Building blocks shared by the ESR networks of :mod:`ntirekit.models` (IMDN, RFDN, RLFN, EFDN, SPAN) and team entries.

Every block mirrors the upstream module structure: the parameter names are the upstream checkpoint keys, convolutions
are ``nn.Conv2d`` modules and activations are modules wherever upstream used modules (the NTIRE 2022 counter counts
ReLU/LeakyReLU/PReLU modules and ``nn.Conv2d`` calls; functional ops are invisible to it), so the published FLOPs,
activations and #conv figures come out of the kit's counters unchanged. A module called several times in
``forward`` (the shared ``act`` of IMDN/RFDN/RLFN blocks) is called several times here too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv_layer", "activation", "pixelshuffle_block", "ShortcutBlock", "mean_channels", "stdv_channels",
           "CCALayer", "ESA", "RLFB"]


def conv_layer(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
               groups: int = 1, bias: bool = True) -> nn.Conv2d:
    """``nn.Conv2d`` with 'same' zero padding for odd kernels (``(k - 1) // 2 * dilation``)."""
    padding = (kernel_size - 1) // 2 * dilation
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=padding, dilation=dilation,
                     groups=groups, bias=bias)


def activation(kind: str, inplace: bool = True, neg_slope: float = 0.05, n_prelu: int = 1) -> nn.Module:
    """The activation module named ``relu`` | ``lrelu`` | ``prelu`` | ``silu`` (upstream defaults: slope 0.05)."""
    kind = kind.lower()
    if kind == "relu":
        return nn.ReLU(inplace)
    if kind == "lrelu":
        return nn.LeakyReLU(neg_slope, inplace)
    if kind == "prelu":
        return nn.PReLU(num_parameters=n_prelu, init=neg_slope)
    if kind == "silu":
        return nn.SiLU(inplace)
    raise ValueError(f"unknown activation {kind!r} (relu, lrelu, prelu, silu)")


def pixelshuffle_block(in_channels: int, out_channels: int, upscale_factor: int = 2,
                       kernel_size: int = 3) -> nn.Sequential:
    """Conv to ``out_channels * r²`` then ``PixelShuffle(r)``; the conv's keys are ``0.weight``/``0.bias``."""
    return nn.Sequential(conv_layer(in_channels, out_channels * upscale_factor ** 2, kernel_size),
                         nn.PixelShuffle(upscale_factor))


class ShortcutBlock(nn.Module):
    """``x + sub(x)``; the wrapped module's keys sit under ``sub.`` (the KAIR/BasicSR layout)."""

    def __init__(self, submodule: nn.Module):
        super().__init__()
        self.sub = submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


def mean_channels(x: torch.Tensor) -> torch.Tensor:
    """Per-channel spatial mean, shape (N, C, 1, 1)."""
    return x.mean(dim=(2, 3), keepdim=True)


def stdv_channels(x: torch.Tensor) -> torch.Tensor:
    """Per-channel spatial standard deviation (population, i.e. divided by H·W), shape (N, C, 1, 1)."""
    return (x - mean_channels(x)).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)


class CCALayer(nn.Module):
    """Contrast-aware channel attention of IMDN: ``x * sigmoid(W2 relu(W1 (std(x) + mean(x))))``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.contrast = stdv_channels
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.contrast(x) + self.avg_pool(x))


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet), in its two upstream forms.

    ``light=False`` (RFDN, EFDN): conv1 → conv2 (3×3, stride 2) → max-pool 7/3 → relu(conv_max) → relu(conv3) →
    conv3_ → bilinear up; ``+ conv_f(conv1)`` → conv4 → sigmoid gate. ``light=True`` (RLFN): ``conv_max`` and
    ``conv3_`` are dropped and the pooled map goes through ``conv3`` alone. ``esa_channels`` defaults to
    ``n_feats // 4`` (RFDN/EFDN); RLFN uses 16.
    """

    def __init__(self, n_feats: int, esa_channels: int | None = None, light: bool = False):
        super().__init__()
        f = n_feats // 4 if esa_channels is None else esa_channels
        self.light = light
        self.conv1 = nn.Conv2d(n_feats, f, kernel_size=1)
        self.conv_f = nn.Conv2d(f, f, kernel_size=1)
        if not light:
            self.conv_max = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(f, f, kernel_size=3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, kernel_size=3, padding=1)
        if not light:
            self.conv3_ = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, kernel_size=1)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        if self.light:
            c3 = self.conv3(c1)
        else:
            c3 = self.conv3_(self.relu(self.conv3(self.relu(self.conv_max(c1)))))
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        return x * self.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class RLFB(nn.Module):
    """Residual local feature block: three 3×3 conv + LeakyReLU(0.05), residual add, 1×1 conv, light ESA."""

    def __init__(self, in_channels: int, mid_channels: int | None = None, out_channels: int | None = None,
                 esa_channels: int = 16):
        super().__init__()
        mid_channels = in_channels if mid_channels is None else mid_channels
        out_channels = in_channels if out_channels is None else out_channels
        self.c1_r = conv_layer(in_channels, mid_channels, 3)
        self.c2_r = conv_layer(mid_channels, mid_channels, 3)
        self.c3_r = conv_layer(mid_channels, in_channels, 3)
        self.c5 = conv_layer(in_channels, out_channels, 1)
        self.esa = ESA(out_channels, esa_channels, light=True)
        self.act = activation("lrelu", neg_slope=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))
