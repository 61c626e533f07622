"""Modulated deformable convolution (DCNv2) without mmcv, and BasicVSR++'s flow-guided deformable alignment.

:func:`modulated_deform_conv2d` uses ``torchvision.ops.deform_conv2d(..., mask=...)`` where torchvision's compiled ops
load and work on the input's device (probed lazily, once per device type, never at import), and a pure-torch
implementation otherwise: every kernel tap is sampled bilinearly with ``grid_sample`` (zero outside the image, as in
the CUDA kernel), modulated by the mask, and contracted with the weight by one matrix product.

Layouts (shared by mmcv, torchvision and the pure-torch path):

- ``offset``: (N, 2 * deform_groups * kh * kw, Ho, Wo); for deform group ``g`` and tap ``k = i * kw + j`` the channels
  ``2 * (g * kh * kw + k)`` and ``+ 1`` hold the (dy, dx) displacement in pixels;
- ``mask``: (N, deform_groups * kh * kw, Ho, Wo), channel ``g * kh * kw + k``;
- deform group ``g`` covers input channels ``g * C / deform_groups`` to ``(g + 1) * C / deform_groups - 1``.

Set ``NTIREKIT_DCN=torch`` (or ``torchvision``) to force one implementation, or use :func:`implementation`.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

_TORCHVISION: dict[str, Callable | None] = {}  # device type -> torchvision's deform_conv2d, or None where it fails
_FORCED: list[str] = []                          # implementation forced by :func:`implementation` (innermost last)


@contextlib.contextmanager
def implementation(impl: str) -> Iterator[None]:
    """Force ``"torch"`` or ``"torchvision"`` inside the block, e.g. ``"torch"`` while fvcore counts MACs (it traces
    the pure-torch path's matmul but cannot see torchvision's custom op)."""
    if impl not in ("auto", "torch", "torchvision"):
        raise ValueError(f"unknown deformable convolution implementation {impl!r}")
    _FORCED.append(impl)
    try:
        yield
    finally:
        _FORCED.pop()


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


def torchvision_available(device: torch.device | str = "cpu") -> bool:
    """Whether torchvision's compiled deformable convolution works on ``device``."""
    return _torchvision_op(torch.device(device)) is not None


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
