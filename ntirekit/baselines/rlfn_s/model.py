"""RLFN_S, the small paper model (bytedance/RLFN model/rlfn_s.py): 48 channels, 6 RLFBs. Input range [0, 255]."""

from __future__ import annotations

from ntirekit.nn.blocks import RLFN


class RLFN_S(RLFN):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48, upscale: int = 4):
        super().__init__(in_channels, out_channels, feature_channels, num_blocks=6, upscale=upscale)
