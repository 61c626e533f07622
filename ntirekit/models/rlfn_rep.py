"""RLFN with re-parameterizable 3x3 convolutions: the training form of an RLFN-family entry.

The network is :class:`ntirekit.models.rlfn.RLFN` (bytedance/RLFN: ``conv_1``, ``num_blocks`` residual local feature
blocks, ``conv_2``, global residual, pixel-shuffle upsampler; its forward is used unchanged) with every 3x3 convolution
outside the ESA attention (``conv_1``, each block's ``c1_r``/``c2_r``/``c3_r``, ``conv_2`` and ``upsampler.0``)
replaced by a linear re-parameterizable block of :mod:`ntirekit.nn.rep`: ``rep = "conv3xc"`` (1x1 expand x``gain`` ->
3x3 -> 1x1 squeeze + 1x1 skip, SPAN-style; the default), ``"ecb"`` (ECBSR's edge-oriented block) or ``"repvgg"``
(3x3+BN, 1x1+BN, identity BN). The ESA and the 1x1 ``c5`` stay plain, and each block keeps RLFN's shared
LeakyReLU(0.05) module between the convs.

``deploy=True`` builds the deploy form: each rep block is one plain 3x3 ``nn.Conv2d`` (keys ``….rep_conv.*``), so the
deploy model has exactly RLFN's convolutions, parameters and MACs for the same widths. Input range [0, 255].
"""

from __future__ import annotations

from torch import nn

from ntirekit.models.rlfn import RLFN
from ntirekit.nn.rep import ECB, Conv3XC, RepVGGBlock, reparameterize_model


def rep_conv3x3(kind: str, in_channels: int, out_channels: int, gain: int, deploy: bool) -> nn.Module:
    """A linear (activation-free) re-parameterizable stand-in for ``nn.Conv2d(in, out, 3, padding=1)``."""
    if kind == "conv3xc":
        return Conv3XC(in_channels, out_channels, gain=gain, act=None, deploy=deploy)
    if kind == "ecb":
        return ECB(in_channels, out_channels, depth_multiplier=float(gain), act=None, deploy=deploy)
    if kind == "repvgg":
        return RepVGGBlock(in_channels, out_channels, act=None, deploy=deploy)
    raise ValueError(f"unknown rep block {kind!r} (conv3xc, ecb, repvgg)")


class RLFNRep(RLFN):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 mid_channels: int | None = None, num_blocks: int = 6, esa_channels: int = 16, upscale: int = 4,
                 rep: str = "conv3xc", gain: int = 2, deploy: bool = False):
        super().__init__(in_channels, out_channels, feature_channels, mid_channels, num_blocks, esa_channels, upscale)

        def swap(conv: nn.Conv2d) -> nn.Module:
            return rep_conv3x3(rep, conv.in_channels, conv.out_channels, gain, deploy)

        self.conv_1 = swap(self.conv_1)
        for i in range(1, num_blocks + 1):
            block = getattr(self, f"block_{i}")
            block.c1_r, block.c2_r, block.c3_r = swap(block.c1_r), swap(block.c2_r), swap(block.c3_r)
        self.conv_2 = swap(self.conv_2)
        self.upsampler[0] = swap(self.upsampler[0])

    def reparameterize(self) -> "RLFNRep":
        """Convert every rep block into one plain 3x3 conv, in place (idempotent)."""
        return reparameterize_model(self)
