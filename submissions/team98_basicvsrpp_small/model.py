"""BasicVSR++ in QE mode (mmediting ``BasicVSRPlusPlus(is_low_res_input=False)``), the compressed-video form used as
the reference of the NTIRE 2021/2022 video enhancement challenges: features at 1/4 size after two stride-2 convs,
output at the input size. The network lives in :mod:`ntirekit.video.basicvsrpp` (shared with the x4 VSR form and
PQF-BasicVSR++); module names equal mmediting's, so its checkpoints load with ``strip_prefix = "generator."``.
"""

from __future__ import annotations

from ntirekit.video.basicvsrpp import BasicVSRPlusPlus

__all__ = ["BasicVSRPlusPlus"]
