"""EDVR-L (mmediting ``EDVRNet``, config edvrl_c128b40_8x8_lr2e-4_600k_reds4): 128 channels, 5 extraction and
40 reconstruction blocks, PCD alignment with 8 deform groups, TSA fusion: 20,633,827 parameters.

Clip interface: ``forward(lqs)`` maps a clip (N, T, 3, H, W) to (N, T, 3, 4H, 4W), each output frame restored from the
5-frame window centred on it (``reflection_circle`` at the clip's ends, as mmediting's REDS test pipeline;
``replicate`` for clips under 5 frames); ``forward_window`` is upstream's window -> centre-frame forward. The network
lives in :mod:`ntirekit.models.edvr`; mmediting checkpoints load with ``strip_prefix = "generator."``.
"""

from __future__ import annotations

from ntirekit.models.edvr import EDVRNet

__all__ = ["EDVRNet"]
