"""team98_basicvsrpp_small: plain BasicVSR++ in QE mode at 16 channels with DIS optical flow, the comparison entry of
team98_pqf_basicvsrpp_small (same size, recipe, seed and steps; see that entry's README). The network is the kit's
``ntirekit.models.basicvsrpp.BasicVSRPlusPlus``, written into this file so that it runs without ntirekit.
"""

from __future__ import annotations

import cv2
import math
import numpy as np
import os
import torch
import torch.nn.functional as F
from dataclasses import dataclass
from torch import nn
from torch.nn.modules.utils import _pair
from typing import Callable
from typing import Iterable
from typing import Sequence

# ----------------------------------------------------------------------------------------------------
# Written by ntirekit from ntirekit.models.basicvsrpp, ntirekit.nn.recurrent, ntirekit.nn.spynet, ntirekit.nn.flow, ntirekit.nn.deform, ntirekit.nn.propagation_steps, ntirekit.nn.dis_flow, so that this file runs without ntirekit installed.
# ----------------------------------------------------------------------------------------------------

# from ntirekit.models.basicvsrpp

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")

FLOW_SOURCES = ("spynet", "zero", "dis")

Flows = tuple[torch.Tensor, torch.Tensor]

# from ntirekit.nn.recurrent

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

# from ntirekit.nn.spynet

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

# from ntirekit.nn.flow

def flow_warp(x: torch.Tensor, flow: torch.Tensor, interpolation: str = "bilinear", padding_mode: str = "zeros",
              align_corners: bool = True) -> torch.Tensor:
    """Sample ``x`` (N, C, H, W) at the positions displaced by ``flow`` (N, H, W, 2) in pixels (dx, dy).

    ``grid_sample`` with bilinear interpolation, zero padding and ``align_corners=True`` as upstream: pixel centres
    sit at integer coordinates, so an integer flow is an exact shift (and samples from outside the frame are zero).
    """
    if x.shape[-2:] != flow.shape[1:3] or flow.shape[-1] != 2:
        raise ValueError(f"flow {tuple(flow.shape)} does not fit features {tuple(x.shape)}: expected (N, H, W, 2)")
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    grid = torch.stack((xs, ys), dim=-1) + flow  # (N, H, W, 2) absolute positions in pixels
    gx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((gx, gy), dim=-1).to(x.dtype), mode=interpolation,
                         padding_mode=padding_mode, align_corners=align_corners)

# from ntirekit.nn.spynet

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

# from ntirekit.nn.deform

_FORCED: list[str] = []                          # implementation forced by :func:`implementation` (innermost last)

_TORCHVISION: dict[str, Callable | None] = {}  # device type -> torchvision's deform_conv2d, or None where it fails

def _torchvision_op(device: torch.device) -> Callable | None:
    """torchvision's ``deform_conv2d`` if its compiled op imports and runs on ``device``'s type, else None (cached)."""
    kind = device.type
    if kind not in _TORCHVISION:
        op = None
        try:
            from torchvision.ops import deform_conv2d

            x = torch.zeros(1, 1, 3, 3, device=device)
            deform_conv2d(x, torch.zeros(1, 2, 3, 3, device=device), torch.zeros(1, 1, 1, 1, device=device),
                          mask=torch.ones(1, 1, 3, 3, device=device))
            op = deform_conv2d
        except Exception:  # ImportError, missing compiled ops (RuntimeError/NotImplementedError), a broken install
            op = None
        _TORCHVISION[kind] = op
    return _TORCHVISION[kind]

def deform_conv2d_torch(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None, weight: torch.Tensor,
                        bias: torch.Tensor | None = None, stride: int | tuple[int, int] = 1,
                        padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1) -> torch.Tensor:
    """Pure-torch modulated deformable convolution (groups and deform groups inferred from the shapes as torchvision
    does: ``groups = C_in / weight.shape[1]``, ``deform_groups = offset.shape[1] / (2 * kh * kw)``)."""
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    taps = kh * kw
    groups = c_in // c_per_group
    dg = offset.shape[1] // (2 * taps)
    if groups * c_per_group != c_in or c_out % groups:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c_in} input channels")
    if dg * 2 * taps != offset.shape[1] or c_in % dg:
        raise ValueError(f"offset with {offset.shape[1]} channels does not fit a {kh}x{kw} kernel and {c_in} channels")
    ho, wo = offset.shape[-2:]
    expected = ((h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
    if (ho, wo) != expected:
        raise ValueError(f"offset is {ho}x{wo}, the convolution gives {expected[0]}x{expected[1]}")

    # Sampling positions in input pixels: (N, dg, taps, Ho, Wo) for y and x.
    dtype, device = offset.dtype, offset.device
    ki = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) * dh  # tap k = i * kw + j
    kj = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * dw
    oy = torch.arange(ho, device=device, dtype=dtype) * sh - ph
    ox = torch.arange(wo, device=device, dtype=dtype) * sw - pw
    off = offset.view(n, dg, taps, 2, ho, wo)
    py = oy.view(1, 1, 1, ho, 1) + ki.view(1, 1, taps, 1, 1) + off[:, :, :, 0]
    px = ox.view(1, 1, 1, 1, wo) + kj.view(1, 1, taps, 1, 1) + off[:, :, :, 1]
    # align_corners=False normalisation maps pixel p to (2p + 1) / size - 1: exact for every size, 1 included;
    # zero padding then gives the kernel's rule (corners outside the image contribute zero).
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # (N, dg, taps, Ho, Wo, 2)
    grid = grid.view(n * dg, taps * ho, wo, 2).to(x.dtype)
    cols = F.grid_sample(x.reshape(n * dg, c_in // dg, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # (N*dg, C/dg, taps*Ho, Wo)
    cols = cols.view(n, dg, c_in // dg, taps, ho * wo)
    if mask is not None:
        cols = cols * mask.view(n, dg, 1, taps, ho * wo).to(x.dtype)
    # (N, groups, C_in/groups * taps, L) against (groups, C_out/groups, C_in/groups * taps)
    cols = cols.reshape(n, groups, c_per_group * taps, ho * wo)
    out = torch.matmul(weight.view(groups, c_out // groups, c_per_group * taps), cols)
    out = out.reshape(n, c_out, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out

def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None, weight: torch.Tensor,
                            bias: torch.Tensor | None = None, stride: int | tuple[int, int] = 1,
                            padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
                            deform_groups: int | None = None, impl: str | None = None) -> torch.Tensor:
    """Modulated deformable convolution (mmcv's ``modulated_deform_conv2d`` semantics, channel groups taken from the
    weight's shape). ``impl``: ``"torchvision"``, ``"torch"`` or ``None``/``"auto"`` (``$NTIREKIT_DCN``, else
    torchvision where it works); :func:`implementation` overrides ``$NTIREKIT_DCN`` in a block."""
    kh, kw = weight.shape[-2:]
    if deform_groups is not None and offset.shape[1] != 2 * deform_groups * kh * kw:
        raise ValueError(f"offset has {offset.shape[1]} channels, expected {2 * deform_groups * kh * kw} "
                         f"for {deform_groups} deform groups and a {kh}x{kw} kernel")
    impl = impl or (_FORCED[-1] if _FORCED else os.environ.get("NTIREKIT_DCN", "auto"))
    if impl not in ("auto", "torch", "torchvision"):
        raise ValueError(f"unknown deformable convolution implementation {impl!r}")
    if impl != "torch":
        op = _torchvision_op(x.device)
        if op is not None:
            return op(x, offset, weight, bias, stride=_pair(stride), padding=_pair(padding),
                      dilation=_pair(dilation), mask=mask)
        if impl == "torchvision":
            raise RuntimeError(f"torchvision's deform_conv2d does not work on {x.device.type} here")
    return deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation)

class ModulatedDeformConv2d(nn.Module):
    """A modulated deformable convolution holding its ``weight`` and ``bias`` (mmcv's parameter names); the offset and
    mask are inputs of :meth:`forward`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, deform_groups: int = 1, bias: bool = True):
        super().__init__()
        if in_channels % groups or out_channels % groups or in_channels % deform_groups:
            raise ValueError("channels must divide by groups and deform_groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deform_groups = groups, deform_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmcv's initialisation: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weight, zero bias."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation, self.deform_groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"deform_groups={self.deform_groups}")

class SecondOrderDeformableAlignment(ModulatedDeformConv2d):
    """BasicVSR++'s flow-guided deformable alignment of two neighbour features (first and second order).

    ``x`` is the concatenation of the two neighbours' features (2 * C channels); ``extra_feat`` the conditions
    ``[warped neighbour 1, current feature, warped neighbour 2]`` (3 * C channels); ``flow_1``/``flow_2`` (N, 2, H, W)
    the flows to the neighbours. ``conv_offset`` predicts offset residues (limited to ``max_residue_magnitude * tanh``)
    which are added to the flows (the first half of the deform groups follow ``flow_1``, the second half ``flow_2``),
    and a sigmoid mask. The last offset conv starts at zero, so an untrained module aligns by the flows alone.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 dilation: int = 1, groups: int = 1, deform_groups: int = 16, bias: bool = True,
                 max_residue_magnitude: float = 10.0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deform_groups,
                         bias)
        self.max_residue_magnitude = max_residue_magnitude
        taps = self.kernel_size[0] * self.kernel_size[1]
        c = out_channels
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * c + 4, c, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(c, 3 * taps * deform_groups, 3, 1, 1))
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, x: torch.Tensor, extra_feat: torch.Tensor, flow_1: torch.Tensor,  # type: ignore[override]
                flow_2: torch.Tensor) -> torch.Tensor:
        out = self.conv_offset(torch.cat([extra_feat, flow_1, flow_2], dim=1))
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        offset = self.max_residue_magnitude * torch.tanh(torch.cat((o1, o2), dim=1))
        offset_1, offset_2 = torch.chunk(offset, 2, dim=1)
        # offsets are (dy, dx) pairs; flows are (dx, dy)
        offset_1 = offset_1 + flow_1.flip(1).repeat(1, offset_1.size(1) // 2, 1, 1)
        offset_2 = offset_2 + flow_2.flip(1).repeat(1, offset_2.size(1) // 2, 1, 1)
        offset = torch.cat([offset_1, offset_2], dim=1)
        return modulated_deform_conv2d(x, offset, torch.sigmoid(mask), self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, self.deform_groups)

# from ntirekit.nn.propagation_steps

@dataclass(frozen=True)
class Step:
    """One step of a propagation branch: ``step``, ``first_order`` and ``second_order`` are steps of this branch,
    ``frame`` and ``second_order_frame`` the clip frames they visit."""

    step: int
    frame: int                          # the clip frame visited at this step
    first_order: int | None             # i-1, None at step 0
    second_order: int | None            # the key step k, None at steps 0 and 1
    second_order_frame: int | None      # the clip frame of the key step
    flow_chain: tuple[int, ...]         # steps whose per-step flows compose the flow from k to i: k+1, ..., i

# from ntirekit.nn.recurrent

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

# from ntirekit.nn.flow

def chain_flows(flows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Compose per-step flows ``(N, 2, H, W)`` into one flow reaching back over all of them.

    ``flows[0]`` is the flow of the first step after the key frame (it warps the key frame onto the next one); each
    further step ``r`` gives ``f = r + warp(f, r)``. With two steps this is BasicVSR++'s second-order flow
    ``flow_n1 + warp(flow_n2, flow_n1)``.
    """
    if not flows:
        raise ValueError("chain_flows needs at least one flow")
    f = flows[0]
    for r in flows[1:]:
        f = r + flow_warp(f, r.permute(0, 2, 3, 1))
    return f

# from ntirekit.nn.recurrent

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

# from ntirekit.nn.dis_flow

def downscale_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """A flow ``(..., 2, H, W)`` on a grid ``factor`` times coarser: block means divided by ``factor`` (sides must
    divide by ``factor``)."""
    if factor == 1:
        return flow
    lead, (h, w) = flow.shape[:-2], flow.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"flow sides {w}x{h} must be multiples of {factor}")
    small = F.avg_pool2d(flow.reshape(-1, 1, h, w), factor) / factor
    return small.reshape(*lead, h // factor, w // factor)

# from ntirekit.nn.propagation_steps

DIRECTIONS = ("forward", "backward")

def propagation_order(n: int, direction: str) -> list[int]:
    """The clip frames visited by a branch, one per step."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if n < 0:
        raise ValueError(f"a clip has a non-negative number of frames, got {n}")
    return list(range(n)) if direction == "forward" else list(range(n - 1, -1, -1))

def pqf_steps(n: int, direction: str, pqf: Iterable[int]) -> list[int]:
    """The steps (sorted) at which a branch visits a PQF; ``pqf`` are clip frame indices."""
    frames = set(int(p) for p in pqf)
    bad = [p for p in frames if not 0 <= p < n]
    if bad:
        raise ValueError(f"PQF positions {sorted(bad)} lie outside a clip of {n} frames")
    return [i for i, f in enumerate(propagation_order(n, direction)) if f in frames]

def second_order_keys(n: int, direction: str, pqf: Iterable[int] | None = None) -> list[int | None]:
    """Per step, the key step of the second-order neighbour (None at steps 0 and 1).

    ``pqf=None``: BasicVSR++ (``i-2``). Otherwise the most recent PQF step among ``0 .. i-2``, else ``i-2``.
    """
    order = propagation_order(n, direction)
    if pqf is None:
        return [None if i < 2 else i - 2 for i in range(len(order))]
    marks = set(pqf_steps(n, direction, pqf))
    keys: list[int | None] = []
    latest: int | None = None       # most recent PQF step among 0 .. i-2
    for i in range(len(order)):
        if i >= 2 and (i - 2) in marks:
            latest = i - 2
        keys.append(None if i < 2 else (latest if latest is not None else i - 2))
    return keys

def plan(n: int, direction: str, pqf: Iterable[int] | None = None) -> list[Step]:
    """Every step of one branch: frame, first-order step, second-order key step and the flow chain."""
    order = propagation_order(n, direction)
    keys = second_order_keys(n, direction, pqf)
    out = []
    for i, (frame, key) in enumerate(zip(order, keys)):
        chain = () if key is None else tuple(range(key + 1, i + 1))
        out.append(Step(step=i, frame=frame, first_order=None if i == 0 else i - 1, second_order=key,
                        second_order_frame=None if key is None else order[key], flow_chain=chain))
    return out

# from ntirekit.nn.dis_flow

DIS_PRESET = "MEDIUM"

def _dis() -> "cv2.DISOpticalFlow":
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{DIS_PRESET}"))

def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"DIS flow needs RGB uint8 HxWx3 frames, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)

def clip_flows(frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(forward, backward)`` flows of a clip of RGB uint8 frames, each ``T-1 x H x W x 2`` float32."""
    grays = [_gray(f) for f in frames]
    if len(grays) < 2:
        raise ValueError(f"a clip needs at least 2 frames for flows, got {len(grays)}")
    dis = _dis()
    h, w = grays[0].shape
    forward = np.empty((len(grays) - 1, h, w, 2), np.float32)
    backward = np.empty_like(forward)
    for i in range(len(grays) - 1):
        backward[i] = dis.calc(grays[i], grays[i + 1], None)
        forward[i] = dis.calc(grays[i + 1], grays[i], None)
    return forward, backward

def tensor_clip_flows(lqs: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """DIS flows of a clip tensor ``(N, T, 3, H, W)`` in ``[0, data_range]``: ``(forward, backward)``, each
    ``(N, T-1, 2, H, W)`` (the frames are rounded to uint8 first, so a clip read from PNGs gives its cached flows)."""
    frames = (lqs.detach().float() * (255.0 / data_range)).round().clamp(0, 255).to(torch.uint8)
    frames = frames.permute(0, 1, 3, 4, 2).cpu().numpy()
    pairs = [clip_flows(list(clip)) for clip in frames]
    fwd = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 1, 4, 2, 3)
    bwd = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 1, 4, 2, 3)
    return fwd.to(lqs.device, lqs.dtype), bwd.to(lqs.device, lqs.dtype)

# from ntirekit.models.basicvsrpp

class BasicVSRPlusPlus(X4Head, nn.Module):
    """BasicVSR++ on a clip ``(N, T, 3, H, W)`` of RGB frames in [0, 1] (``T >= 2``).

    Args:
        mid_channels: feature channels (64 upstream).
        num_blocks: residual blocks per propagation branch (7 upstream).
        max_residue_magnitude: bound of the offset residue (10 upstream).
        is_low_res_input: True for x4 VSR, False for the full-size QE form.
        num_blocks_reconstruction: residual blocks of the reconstruction (5 upstream; PQF-BasicVSR++ grows it to 55).
        flow: ``"spynet"`` (upstream), ``"zero"``: no flow network, every flow exactly 0 (alignment then rests on
            the learned deformable offsets alone; the form of a model trained with a frozen, zeroed SPyNet), or
            ``"dis"``: OpenCV's DIS optical flow (module docstring).
        hr_channels: width of the full-size reconstruction layers (64 upstream).
        hr_blocks: residual blocks at full size after ``conv_hr`` (none upstream).
        hr_frame_input: ``conv_hr`` also sees the input frame (not upstream; see :meth:`X4Head.add_x4_head`).
        deform_groups: offset groups of the deformable alignments (16 upstream; their offset convolutions, with
            27 outputs per group, are most of a step's cost at small ``mid_channels``).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 7, max_residue_magnitude: float = 10,
                 is_low_res_input: bool = True, num_blocks_reconstruction: int = 5, flow: str = "spynet",
                 hr_channels: int = 64, deform_groups: int = 16, hr_blocks: int = 0, hr_frame_input: bool = False):
        super().__init__()
        if flow not in FLOW_SOURCES:
            raise ValueError(f"flow must be one of {', '.join(map(repr, FLOW_SOURCES))}, got {flow!r}")
        self.mid_channels = mid_channels
        self.is_low_res_input = is_low_res_input
        self.flow = flow
        #: output size / input size, the fewest frames, the smallest input side and the multiple input sides must be
        self.scale = 4 if is_low_res_input else 1
        self.min_frames = 2
        self.min_input_size = 64 if is_low_res_input else 256 if flow == "spynet" else 32
        self.input_multiple = 1 if is_low_res_input else 4
        #: the feature grid is this many times coarser than the frames
        self.feature_stride = 1 if is_low_res_input else 4

        self.spynet = SPyNet() if flow == "spynet" else None
        if is_low_res_input:
            self.feat_extract: nn.Module = ResidualBlocksWithInputConv(3, mid_channels, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, mid_channels, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(mid_channels, mid_channels, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
                ResidualBlocksWithInputConv(mid_channels, mid_channels, 5))

        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(BRANCHES):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                2 * mid_channels, mid_channels, 3, padding=1, deform_groups=deform_groups,
                max_residue_magnitude=max_residue_magnitude)
            self.backbone[name] = ResidualBlocksWithInputConv((2 + i) * mid_channels, mid_channels, num_blocks)

        self.reconstruction = ResidualBlocksWithInputConv(5 * mid_channels, mid_channels, num_blocks_reconstruction)
        self.add_x4_head(mid_channels, hr_channels, hr_blocks, hr_frame_input)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    # ------------------------------------------------------------------------------------------------------------------
    def check_input(self, lqs: torch.Tensor) -> None:
        """Raise a one-line ``ValueError`` unless ``lqs`` is a clip this form takes (no padding is done here)."""
        check_clip(lqs, self.min_frames, self.min_input_size, "BasicVSR++")
        h, w = lqs.shape[-2:]
        if h % self.input_multiple or w % self.input_multiple:
            raise ValueError(f"frame sides must be multiples of {self.input_multiple}, got {w}x{h} (pad the frames)")

    def compute_flow(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flows_forward, flows_backward)``, each (N, T-1, 2, h, w) at the flow resolution
        (:func:`ntirekit.nn.recurrent.bidirectional_flows`); zeros without a flow network (``flow="zero"``; the
        ``"dis"`` flows are made from the full-size frames in :meth:`feature_flows`)."""
        if self.spynet is None:
            n, t, _, h, w = lqs.shape
            zeros = lqs.new_zeros(n, t - 1, 2, h, w)
            return zeros, zeros
        return bidirectional_flows(self.spynet, lqs)

    def propagation_plan(self, t: int, direction: str, pqf: Iterable[int] | None = None) -> list[Step]:
        """The propagation steps of one direction (BasicVSR++: the second-order neighbour is two steps back)."""
        return plan(t, direction)

    @staticmethod
    def step_flows(flows_forward: torch.Tensor, flows_backward: torch.Tensor, steps: Sequence[Step],
                   direction: str) -> list[torch.Tensor | None]:
        """Per step ``s >= 1``, the flow (N, 2, h, w) that warps step ``s-1`` onto step ``s`` (None at step 0)."""
        out: list[torch.Tensor | None] = [None]
        for step in steps[1:]:
            # forward: frame f from f-1 is flows_forward[f-1]; backward: frame f from f+1 is flows_backward[f]
            out.append(flows_forward[:, step.frame - 1] if direction == "forward" else flows_backward[:, step.frame])
        return out

    def propagate(self, feats: dict[str, list[torch.Tensor]], flows: list[torch.Tensor | None],
                  steps: Sequence[Step], name: str) -> list[torch.Tensor]:
        """One propagation branch; returns its features in frame order."""
        spatial = feats["spatial"]
        earlier = [feats[k] for k in feats if k != "spatial"]  # branches already run, in BRANCHES order
        align = self.deform_align[name]
        by_step: list[torch.Tensor] = []
        feat_prop = spatial[0].new_zeros(spatial[0].shape)
        for step in steps:
            feat_current = spatial[step.frame]
            if step.step > 0:
                flow_n1 = flows[step.step]
                assert flow_n1 is not None
                cond_n1 = flow_warp(feat_prop, flow_n1.permute(0, 2, 3, 1))
                if step.second_order is None:
                    feat_n2 = torch.zeros_like(feat_prop)
                    flow_n2 = torch.zeros_like(flow_n1)
                    cond_n2 = torch.zeros_like(cond_n1)
                else:
                    feat_n2 = by_step[step.second_order]
                    flow_n2 = chain_flows([flows[s] for s in step.flow_chain])  # type: ignore[misc]
                    cond_n2 = flow_warp(feat_n2, flow_n2.permute(0, 2, 3, 1))
                cond = torch.cat([cond_n1, feat_current, cond_n2], dim=1)
                feat_prop = align(torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1, flow_n2)
            feat = torch.cat([feat_current, *(branch[step.frame] for branch in earlier), feat_prop], dim=1)
            feat_prop = feat_prop + self.backbone[name](feat)
            by_step.append(feat_prop)
        in_frame_order: list[torch.Tensor] = [None] * len(steps)  # type: ignore[list-item]
        for step, f in zip(steps, by_step):
            in_frame_order[step.frame] = f
        return in_frame_order

    def upsample(self, lqs: torch.Tensor, feats: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        outputs = []
        for i in range(lqs.shape[1]):
            hr = torch.cat([feats["spatial"][i], *(feats[k][i] for k in BRANCHES)], dim=1)
            outputs.append(self.x4_head(self.reconstruction(hr), lqs[:, i]))
        return torch.stack(outputs, dim=1)

    def feature_flows(self, lqs: torch.Tensor, flows: Flows | None = None) -> Flows:
        """``(flows_forward, flows_backward)`` on the feature grid: from ``flows`` (given at the frames' size), else
        from the flow source (module docstring)."""
        n, t, c, h, w = lqs.shape
        if flows is None and self.flow == "dis":
            flows = tensor_clip_flows(lqs)
        if flows is not None:
            expected = (n, t - 1, 2, h, w)
            if any(tuple(f.shape) != expected for f in flows):
                raise ValueError(f"flows {[tuple(f.shape) for f in flows]} do not fit the clip: expected {expected}")
            return downscale_flow(flows[0], self.feature_stride), downscale_flow(flows[1], self.feature_stride)
        if self.is_low_res_input:
            return self.compute_flow(lqs)
        lqs_flow = F.interpolate(lqs.reshape(-1, c, h, w), scale_factor=0.25, mode="bicubic")
        return self.compute_flow(lqs_flow.view(n, t, c, h // 4, w // 4))

    def features(self, lqs: torch.Tensor, pqf: Iterable[int] | None = None,
                 flows: Flows | None = None) -> dict[str, list[torch.Tensor]]:
        """Per-frame features: ``spatial`` (the extractor's) and one list per propagation branch, in frame order."""
        self.check_input(lqs)
        n, t, c, h, w = lqs.shape
        feats_ = self.feat_extract(lqs.reshape(-1, c, h, w))
        feats_ = feats_.view(n, t, *feats_.shape[1:])
        feats: dict[str, list[torch.Tensor]] = {"spatial": [feats_[:, i] for i in range(t)]}
        flows_forward, flows_backward = self.feature_flows(lqs, flows)
        pqf = None if pqf is None else list(pqf)
        for name in BRANCHES:
            direction = name.split("_")[0]
            steps = self.propagation_plan(t, direction, pqf)
            flows = self.step_flows(flows_forward, flows_backward, steps, direction)
            feats[name] = self.propagate(feats, flows, steps, name)
        return feats

    def run(self, lqs: torch.Tensor, pqf: Iterable[int] | None = None, flows: Flows | None = None) -> torch.Tensor:
        return self.upsample(lqs, self.features(lqs, pqf, flows))

    def forward(self, lqs: torch.Tensor, flows: Flows | None = None) -> torch.Tensor:
        """Output clip (N, T, 3, H*scale, W*scale) for the input clip (N, T, 3, H, W); ``flows``: see the module
        docstring."""
        return self.run(lqs, flows=flows)


# ----------------------------------------------------------------------------------------------------
# the entry's own code


__all__ = ["BasicVSRPlusPlus"]
