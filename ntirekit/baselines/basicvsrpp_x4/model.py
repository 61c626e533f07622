"""BasicVSR++ x4 video super-resolution (mmediting ``BasicVSRPlusPlus``, ``is_low_res_input=True``): 64 channels,
7 residual blocks per propagation branch, SPyNet included: 7,322,927 parameters. The network lives in
:mod:`ntirekit.models.basicvsrpp`; mmediting checkpoints load with ``strip_prefix = "generator."``.
"""

from __future__ import annotations

from ntirekit.models.basicvsrpp import BasicVSRPlusPlus

__all__ = ["BasicVSRPlusPlus"]
