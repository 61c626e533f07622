"""RLFN_Prune: ByteESR's NTIRE 2022 Efficient SR winner (bytedance/RLFN model/rlfn_ntire.py).

The pruned RLFN: 46 feature / 48 mid channels, 4 RLFBs (see :class:`ntirekit.nn.blocks.RLFN`). The same tensors were
submitted to the challenge under the RLFN_cut key names (ofsoundof/NTIRE2022_ESR models/team04_rlfn.py:
``fea_conv``/``B1..B4``/``LR_conv``); the entry's ``[weights].rename`` maps those onto these. Input range [0, 255].
"""

from __future__ import annotations

from ntirekit.nn.blocks import RLFN


class RLFN_Prune(RLFN):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 46,
                 mid_channels: int = 48, upscale: int = 4):
        super().__init__(in_channels, out_channels, feature_channels, mid_channels, num_blocks=4, upscale=upscale)
