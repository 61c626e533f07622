"""Re-parameterizable convolution blocks and :func:`reparameterize_model`.

A re-parameterizable block trains as several linear branches whose sum is, at inference, one plain 3x3 convolution.
Every block here follows one contract (``docs/design.md``):

- ``forward`` of the training form runs the branches; it never merges weights on the fly;
- ``reparameterize()`` computes the merged kernel and bias (in float64, then cast back to the weights' dtype), builds ONE
  plain ``nn.Conv2d`` named ``rep_conv``, deletes the branches and is idempotent (a second call does nothing);
- ``Block(..., deploy=True)`` builds the deploy form directly (only ``rep_conv`` and the activation), so a deploy state
  dict written from a reparameterized model loads into it with ``strict=True``.

The blocks:

- :class:`ECB`: the edge-oriented convolution block of ECBSR (Zhang et al., ACM MM 2021): 3x3; 1x1->3x3; 1x1->Sobel-x;
  1x1->Sobel-y; 1x1->Laplacian (each fixed edge filter with a learnable per-channel scale and bias); optional identity.
- :class:`Conv3XC`: the 1x1 expand -> 3x3 -> 1x1 squeeze block with a 1x1 skip (SPAN's Conv3XC; FMEN/RRRB family),
  expansion ``gain``, optional identity.
- :class:`RepVGGBlock`: 3x3+BN, 1x1+BN and identity BN (RepVGG, Ding et al., CVPR 2021), BatchNorm folded on merge.

Why the merge is exact at the borders: a 1x1 conv followed by a 3x3 conv equals one 3x3 conv of the zero-padded input
only if the 1x1 output is padded with the 1x1 *bias* (what the 1x1 conv would output on zero input), not with zeros.
:class:`_OneByOneThen3x3` (ECB's sequential branches) pads its 1x1 output with its bias; :class:`Conv3XC` pads the
block input with zeros before the 1x1, which is the same thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RepBlock", "ECB", "Conv3XC", "RepVGGBlock", "reparameterize_model", "is_reparameterized",
           "make_activation", "fuse_1x1_then_kxk", "fold_bn"]


# --------------------------------------------------------------------------------------------------------------------
# Kernel algebra (pure functions; every merge goes through these)
# --------------------------------------------------------------------------------------------------------------------

def fuse_1x1_then_kxk(w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor,
                      b2: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``conv_kxk(pad_with_b1(conv_1x1(x)))`` as one kxk conv of the zero-padded ``x``.

    ``w1``: (mid, in, 1, 1); ``w2``: (out, mid, k, k). Returns ((out, in, k, k), (out,)).
    """
    k = torch.einsum("omhw,mi->oihw", w2, w1[:, :, 0, 0])
    b = w2.sum(dim=(2, 3)) @ b1 if b1 is not None else w2.new_zeros(w2.shape[0])
    if b2 is not None:
        b = b + b2
    return k, b


def fuse_kxk_then_1x1(w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor,
                      b2: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``conv_1x1(conv_kxk(x))``: ``w1`` (mid, in, k, k), ``w2`` (out, mid, 1, 1)."""
    m = w2[:, :, 0, 0]
    k = torch.einsum("om,mihw->oihw", m, w1)
    b = m @ b1 if b1 is not None else w1.new_zeros(w2.shape[0])
    if b2 is not None:
        b = b + b2
    return k, b


def pad_1x1_to_3x3(w: torch.Tensor) -> torch.Tensor:
    """A (out, in, 1, 1) kernel as the centre tap of a (out, in, 3, 3) kernel."""
    return F.pad(w, (1, 1, 1, 1))


def identity_3x3(channels: int, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """The (C, C, 3, 3) kernel of the identity map."""
    k = torch.zeros(channels, channels, 3, 3, dtype=dtype, device=device)
    k[torch.arange(channels), torch.arange(channels), 1, 1] = 1
    return k


def fold_bn(weight: torch.Tensor | None, bn: nn.BatchNorm2d, channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` in eval mode (``weight`` None means an identity 3x3 conv of ``channels``).

    The conv before a BatchNorm has no bias in RepVGG; the BN supplies it.
    """
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    std = torch.sqrt(var + bn.eps)
    if weight is None:
        assert channels is not None
        weight = identity_3x3(channels, torch.float64, var.device)
    k = weight.double() * (gamma / std).view(-1, 1, 1, 1)
    return k, beta - mean * gamma / std


def make_activation(act: str | None, channels: int) -> nn.Module:
    """``prelu`` (per channel), ``relu``, ``lrelu`` (slope 0.05), ``gelu``, ``silu``, or ``linear``/None (Identity)."""
    act = (act or "linear").lower()
    if act == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(0.05, inplace=True)
    if act == "gelu":
        return nn.GELU()
    if act == "silu":
        return nn.SiLU(inplace=True)
    if act in ("linear", "identity", "none"):
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}")


# --------------------------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------------------------

class RepBlock(nn.Module):
    """Base of every re-parameterizable block: ``rep_conv`` (+ ``act``) once deployed, branches before.

    Subclasses set ``in_channels``/``out_channels``, build their branches in training form, implement
    :meth:`merged` (the equivalent 3x3 kernel and bias, in float64) and :meth:`forward_branches`, and list the names of
    their branch submodules/parameters in ``_branches``.
    """

    _branches: tuple[str, ...] = ()

    def __init__(self, in_channels: int, out_channels: int, act: str | None, deploy: bool):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deployed = bool(deploy)
        if deploy:
            self.rep_conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)
        self.act = make_activation(act, out_channels)

    # -- subclass API ------------------------------------------------------------------------------------------------
    def merged(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rep_conv(x) if self.deployed else self.forward_branches(x)
        return self.act(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one plain 3x3 ``nn.Conv2d`` (``rep_conv``); a no-op once done."""
        if self.deployed:
            return
        ref = next(p for p in self.parameters())
        kernel, bias = self.merged()
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1, bias=True)
        conv.to(device=ref.device, dtype=ref.dtype)
        conv.weight.copy_(kernel.to(ref.dtype))
        conv.bias.copy_(bias.to(ref.dtype))
        for name in self._branches:
            delattr(self, name)
        self.rep_conv = conv
        self.deployed = True

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, deployed={self.deployed}"


# --------------------------------------------------------------------------------------------------------------------
# ECB (ECBSR)
# --------------------------------------------------------------------------------------------------------------------

def _edge_mask(kind: str) -> torch.Tensor:
    if kind == "sobelx":
        m = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
    elif kind == "sobely":
        m = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]
    elif kind == "laplacian":
        m = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    else:
        raise ValueError(f"unknown edge filter {kind!r}")
    return torch.tensor(m)


def _pad_with_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pad a (N, C, H, W) map by one pixel on every side with the per-channel value ``bias``."""
    n, c, h, w = y.shape
    out = bias.view(1, c, 1, 1).expand(n, c, h + 2, w + 2).clone()
    out[:, :, 1:-1, 1:-1] = y
    return out


class _OneByOneThen3x3(nn.Module):
    """ECB's sequential branch: 1x1 conv, pad its output with its bias, then a 3x3 (valid) conv.

    ``kind = "conv"``: a learnable dense 3x3 (``conv3``, ``mid`` intermediate channels). ``kind`` in ``sobelx``,
    ``sobely``, ``laplacian``: a fixed depthwise edge filter with a learnable per-channel ``scale`` and ``bias``
    (``mid == out``); the filter itself is a non-persistent buffer (not a parameter, not in the state dict).
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        self.kind = kind
        mid = out_channels if kind != "conv" else int(mid_channels or out_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        if kind == "conv":
            self.conv3 = nn.Conv2d(mid, out_channels, 3, padding=0)
        else:
            self.scale = nn.Parameter(torch.randn(out_channels, 1, 1, 1) * 1e-3)
            self.bias = nn.Parameter(torch.randn(out_channels) * 1e-3)
            self.register_buffer("mask", _edge_mask(kind).expand(out_channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _pad_with_bias(self.conv1(x), self.conv1.bias)
        if self.kind == "conv":
            return self.conv3(y)
        return F.conv2d(y, self.scale * self.mask, self.bias, groups=y.shape[1])

    def merged(self) -> tuple[torch.Tensor, torch.Tensor]:
        w1, b1 = self.conv1.weight.double(), self.conv1.bias.double()
        if self.kind == "conv":
            return fuse_1x1_then_kxk(w1, b1, self.conv3.weight.double(), self.conv3.bias.double())
        c = w1.shape[0]
        dense = torch.zeros(c, c, 3, 3, dtype=torch.float64, device=w1.device)
        dense[torch.arange(c), torch.arange(c)] = (self.scale.double() * self.mask.double())[:, 0]
        return fuse_1x1_then_kxk(w1, b1, dense, self.bias.double())


class ECB(RepBlock):
    """Edge-oriented Convolution Block (ECBSR). Training form: five branches (+ identity); deploy: one 3x3 conv.

    ``depth_multiplier`` sets the 1x1->3x3 branch's intermediate width (``out * depth_multiplier``; 2.0 in ECBSR).
    ``with_idt`` adds the identity branch when ``in == out`` (ignored otherwise, as in ECBSR). ``act``: activation after
    the sum (``prelu`` in ECBSR, ``linear`` for the last block).
    """

    _branches = ("conv3x3", "conv1x1_3x3", "conv1x1_sbx", "conv1x1_sby", "conv1x1_lpl")

    def __init__(self, in_channels: int, out_channels: int, depth_multiplier: float = 2.0, act: str | None = "prelu",
                 with_idt: bool = False, deploy: bool = False):
        super().__init__(in_channels, out_channels, act, deploy)
        self.with_idt = bool(with_idt) and in_channels == out_channels
        if deploy:
            return
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv1x1_3x3 = _OneByOneThen3x3("conv", in_channels, out_channels, int(out_channels * depth_multiplier))
        self.conv1x1_sbx = _OneByOneThen3x3("sobelx", in_channels, out_channels)
        self.conv1x1_sby = _OneByOneThen3x3("sobely", in_channels, out_channels)
        self.conv1x1_lpl = _OneByOneThen3x3("laplacian", in_channels, out_channels)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        y = (self.conv3x3(x) + self.conv1x1_3x3(x) + self.conv1x1_sbx(x) + self.conv1x1_sby(x)
             + self.conv1x1_lpl(x))
        return y + x if self.with_idt else y

    def merged(self) -> tuple[torch.Tensor, torch.Tensor]:
        k, b = self.conv3x3.weight.double(), self.conv3x3.bias.double()
        for branch in (self.conv1x1_3x3, self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl):
            kb, bb = branch.merged()
            k, b = k + kb, b + bb
        if self.with_idt:
            k = k + identity_3x3(self.out_channels, torch.float64, k.device)
        return k, b


# --------------------------------------------------------------------------------------------------------------------
# Conv3XC (SPAN / FMEN family)
# --------------------------------------------------------------------------------------------------------------------

class Conv3XC(RepBlock):
    """1x1 expand (``in*gain``) -> 3x3 (``out*gain``) -> 1x1 squeeze (``out``), plus a 1x1 skip and optional identity.

    The block input is zero-padded by one pixel before the expanding 1x1 (so the 1x1 output is padded with its bias and
    the merge into one 3x3 conv is exact at the borders). Stride 1. ``act`` follows the sum (``linear`` by default).
    """

    _branches = ("sk", "conv")

    def __init__(self, in_channels: int, out_channels: int, gain: int = 2, act: str | None = None,
                 with_idt: bool = False, deploy: bool = False):
        super().__init__(in_channels, out_channels, act, deploy)
        self.gain = int(gain)
        self.with_idt = bool(with_idt) and in_channels == out_channels
        if deploy:
            return
        self.sk = nn.Conv2d(in_channels, out_channels, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels * self.gain, 1),
            nn.Conv2d(in_channels * self.gain, out_channels * self.gain, 3, padding=0),
            nn.Conv2d(out_channels * self.gain, out_channels, 1),
        )

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        return y + x if self.with_idt else y

    def merged(self) -> tuple[torch.Tensor, torch.Tensor]:
        c1, c3, c1b = (m for m in self.conv)
        k, b = fuse_1x1_then_kxk(c1.weight.double(), c1.bias.double(), c3.weight.double(), c3.bias.double())
        k, b = fuse_kxk_then_1x1(k, b, c1b.weight.double(), c1b.bias.double())
        k = k + pad_1x1_to_3x3(self.sk.weight.double())
        b = b + self.sk.bias.double()
        if self.with_idt:
            k = k + identity_3x3(self.out_channels, torch.float64, k.device)
        return k, b


# --------------------------------------------------------------------------------------------------------------------
# RepVGG
# --------------------------------------------------------------------------------------------------------------------

class RepVGGBlock(RepBlock):
    """3x3 conv + BN, 1x1 conv + BN and (``in == out``) identity BN, summed; ``act`` after (``relu`` in RepVGG).

    The merge folds each BatchNorm's running statistics and affine parameters, so it matches the block in eval mode
    (in training mode BatchNorm uses batch statistics and no fixed conv can match it).
    """

    _branches = ("conv3x3", "bn3x3", "conv1x1", "bn1x1", "bn_idt")

    def __init__(self, in_channels: int, out_channels: int, act: str | None = "relu", with_idt: bool = True,
                 deploy: bool = False):
        super().__init__(in_channels, out_channels, act, deploy)
        self.with_idt = bool(with_idt) and in_channels == out_channels
        if deploy:
            return
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn3x3 = nn.BatchNorm2d(out_channels)
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1x1 = nn.BatchNorm2d(out_channels)
        self.bn_idt = nn.BatchNorm2d(out_channels) if self.with_idt else None

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3x3(self.conv3x3(x)) + self.bn1x1(self.conv1x1(x))
        return y + self.bn_idt(x) if self.bn_idt is not None else y

    def merged(self) -> tuple[torch.Tensor, torch.Tensor]:
        k, b = fold_bn(self.conv3x3.weight, self.bn3x3)
        k1, b1 = fold_bn(pad_1x1_to_3x3(self.conv1x1.weight), self.bn1x1)
        k, b = k + k1, b + b1
        if self.bn_idt is not None:
            ki, bi = fold_bn(None, self.bn_idt, self.out_channels)
            k, b = k + ki, b + bi
        return k, b


# --------------------------------------------------------------------------------------------------------------------
# Whole models
# --------------------------------------------------------------------------------------------------------------------

def _reparameterizable(module: nn.Module) -> bool:
    return isinstance(module, RepBlock) or callable(getattr(module, "reparameterize", None))


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Convert, in place, every re-parameterizable block of ``model`` into its deploy form; returns ``model``.

    Converts the kit's :class:`RepBlock` subclasses and, duck-typed, any other submodule with a ``reparameterize()``
    method (a team's own block). The root module's own ``reparameterize`` is not called (it may call this function).
    Idempotent. The model is left in the training mode it was in.
    """
    for name, module in list(model.named_modules()):
        if module is model or not _reparameterizable(module):
            continue
        module.reparameterize()
    return model


def is_reparameterized(model: nn.Module) -> bool:
    """True when no submodule of ``model`` is a re-parameterizable block still in training form."""
    return not any(isinstance(m, RepBlock) and not m.deployed for m in model.modules())

