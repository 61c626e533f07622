"""BasicVSR x4 video super-resolution (mmediting ``BasicVSRNet``): 64 channels, 30 residual blocks per propagation
branch, SPyNet included: 6,291,311 parameters. The network lives in :mod:`ntirekit.models.basicvsr`; mmediting
checkpoints load with ``strip_prefix = "generator."``.
"""

from __future__ import annotations

from ntirekit.models.basicvsr import BasicVSRNet

__all__ = ["BasicVSRNet"]
