"""Propagation index rules of BasicVSR++ and PQF-BasicVSR++ as pure functions (no tensors).

A propagation branch visits the frames of a clip of ``n`` frames one *step* at a time: forward visits frames
``0, 1, ..., n-1``, backward visits ``n-1, ..., 0``. At step ``i`` the branch aligns features of earlier steps onto
the current frame:

- step 0: nothing to align;
- step 1: first order only (the feature of step 0), the second-order inputs are zeros;
- step ``i >= 2``: first order = step ``i-1``; second order = a *key* step ``k <= i-2``.

BasicVSR++ takes ``k = i-2``. PQF-BasicVSR++ (NTIRE 2022 VQE winner) takes the most recent peak-quality frame (PQF)
among steps ``0 .. i-2`` of this branch's order (the backward branch sees the PQF list reversed), falling back to
``i-2`` when there is none. The flow from step ``k`` to step ``i`` is chained from the per-step flows of steps
``k+1, ..., i`` (:func:`ntirekit.nn.flow.chain_flows`): the per-step flow of step ``s`` warps step ``s-1`` onto step
``s``; with ``k = i-2`` the chain is BasicVSR++'s second-order flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class Step:
    """One step of a propagation branch: ``step``, ``first_order`` and ``second_order`` are steps of this branch,
    ``frame`` and ``second_order_frame`` the clip frames they visit."""

    step: int
    frame: int                          # the clip frame visited at this step
    first_order: int | None             # i-1, None at step 0
    second_order: int | None            # the key step k, None at steps 0 and 1
    second_order_frame: int | None      # the clip frame of the key step
    flow_chain: tuple[int, ...]         # steps whose per-step flows compose the flow from k to i: k+1, ..., i


def propagation_order(n: int, direction: str) -> list[int]:
    """The clip frames visited by a branch, one per step."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if n < 0:
        raise ValueError(f"a clip has a non-negative number of frames, got {n}")
    return list(range(n)) if direction == "forward" else list(range(n - 1, -1, -1))


def pqf_steps(n: int, direction: str, pqf: Iterable[int]) -> list[int]:
    """The steps (sorted) at which a branch visits a PQF; ``pqf`` are clip frame indices."""
    frames = set(int(p) for p in pqf)
    bad = [p for p in frames if not 0 <= p < n]
    if bad:
        raise ValueError(f"PQF positions {sorted(bad)} lie outside a clip of {n} frames")
    return [i for i, f in enumerate(propagation_order(n, direction)) if f in frames]


def second_order_keys(n: int, direction: str, pqf: Iterable[int] | None = None) -> list[int | None]:
    """Per step, the key step of the second-order neighbour (None at steps 0 and 1).

    ``pqf=None``: BasicVSR++ (``i-2``). Otherwise the most recent PQF step among ``0 .. i-2``, else ``i-2``.
    """
    order = propagation_order(n, direction)
    if pqf is None:
        return [None if i < 2 else i - 2 for i in range(len(order))]
    marks = set(pqf_steps(n, direction, pqf))
    keys: list[int | None] = []
    latest: int | None = None       # most recent PQF step among 0 .. i-2
    for i in range(len(order)):
        if i >= 2 and (i - 2) in marks:
            latest = i - 2
        keys.append(None if i < 2 else (latest if latest is not None else i - 2))
    return keys


def plan(n: int, direction: str, pqf: Iterable[int] | None = None) -> list[Step]:
    """Every step of one branch: frame, first-order step, second-order key step and the flow chain."""
    order = propagation_order(n, direction)
    keys = second_order_keys(n, direction, pqf)
    out = []
    for i, (frame, key) in enumerate(zip(order, keys)):
        chain = () if key is None else tuple(range(key + 1, i + 1))
        out.append(Step(step=i, frame=frame, first_order=None if i == 0 else i - 1, second_order=key,
                        second_order_frame=None if key is None else order[key], flow_chain=chain))
    return out
