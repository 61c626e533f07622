"""RLFN (Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", CVPRW 2022; bytedance/RLFN).

:class:`RLFN` is the network of ``model/rlfn.py`` (52 channels, 6 RLFBs); :class:`RLFN_S` the small paper model
(``model/rlfn_s.py``: 48 channels, 6 RLFBs); :class:`RLFN_Prune` ByteESR's NTIRE 2022 Efficient SR winner
(``model/rlfn_ntire.py``: 46 feature / 48 mid channels, 4 RLFBs; the same tensors were submitted to the challenge under
the RLFN_cut key names of ofsoundof/NTIRE2022_ESR ``models/team04_rlfn.py``, which the entry's ``[weights].rename``
maps onto these). Input range [0, 255].
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.blocks import RLFB, conv_layer, pixelshuffle_block

__all__ = ["RLFN", "RLFN_S", "RLFN_Prune"]


class RLFN(nn.Module):
    """Residual local feature network (bytedance/RLFN), the base of the RLFN baselines and many later entries.

    Keys: ``conv_1``, ``block_1`` … ``block_{num_blocks}``, ``conv_2``, ``upsampler.0``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 mid_channels: int | None = None, num_blocks: int = 6, esa_channels: int = 16, upscale: int = 4):
        super().__init__()
        self.num_blocks = num_blocks
        self.conv_1 = conv_layer(in_channels, feature_channels, 3)
        for i in range(1, num_blocks + 1):
            self.add_module(f"block_{i}", RLFB(feature_channels, mid_channels, esa_channels=esa_channels))
        self.conv_2 = conv_layer(feature_channels, feature_channels, 3)
        self.upsampler = pixelshuffle_block(feature_channels, out_channels, upscale_factor=upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.conv_1(x)
        out = feature
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        return self.upsampler(self.conv_2(out) + feature)


class RLFN_S(RLFN):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48, upscale: int = 4):
        super().__init__(in_channels, out_channels, feature_channels, num_blocks=6, upscale=upscale)


class RLFN_Prune(RLFN):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 46,
                 mid_channels: int = 48, upscale: int = 4):
        super().__init__(in_channels, out_channels, feature_channels, mid_channels, num_blocks=4, upscale=upscale)
