"""PQF-BasicVSR++ (TaoMC2, NTIRE 2022 LDV 2.0 track 1 winner): BasicVSR++ in QE mode whose second-order neighbour in
each propagation branch is the most recent peak-quality frame (PQF), the flow to it chained from the per-step flows,
with a reconstruction grown to 55 residual blocks. See :mod:`ntirekit.nn.propagation_steps` for the index rule and
:class:`ntirekit.models.basicvsrpp.PQFBasicVSRPlusPlus` for the network.

PQF positions: ``forward(x, pqf=[...])`` takes them per clip (the vqe track reads them from the clip's ``qp.txt``);
without them every ``period``-th frame from frame 0 is taken as a PQF (``period = 4``: the pattern "1000 1000 ...").
"""

from __future__ import annotations

from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

__all__ = ["PQFBasicVSRPlusPlus"]
