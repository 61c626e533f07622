"""IconVSR x4 video super-resolution (mmediting ``IconVSR``): BasicVSR with coupled propagation and information
refill (an EDVR-M front end over 5-frame windows at keyframes 0, 5, 10, ... and the last frame): 8,694,991
parameters, SPyNet and the refill extractor included. The network lives in :mod:`ntirekit.models.basicvsr`;
mmediting checkpoints load with ``strip_prefix = "generator."``.
"""

from __future__ import annotations

from ntirekit.models.basicvsr import IconVSR

__all__ = ["IconVSR"]
