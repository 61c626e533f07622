"""Pure ranking arithmetic: competition ranks, the score formula, the Pareto front."""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def competition_ranks(values: Sequence[float], higher_is_better: bool = False) -> list[int]:
    """Standard competition ranks ("1224") on the values as given (never rounded): equal values share the best rank
    and the ranks after them are skipped, e.g. ``[1.0, 2.0, 2.0, 3.0] -> [1, 2, 2, 4]``."""
    sign = -1.0 if higher_is_better else 1.0
    keys = [sign * v for v in values]
    return [1 + sum(other < key for other in keys) for key in keys]


def score(values: Mapping[str, float], baseline: Mapping[str, float], weights: Mapping[str, float],
          exponent: float = 2.0) -> float:
    """``sum(w_X * exp(exponent * X / X_baseline))`` over the weighted metrics (the NTIRE 2024-2026 score).

    The baseline itself scores ``sum(w) * e^exponent`` (e² = 7.3891 with weights summing to 1)."""
    return sum(w * math.exp(exponent * values[m] / baseline[m]) for m, w in weights.items())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated when ``x`` is minimised and ``y`` maximised, sorted by ``x``.

    A point is dominated when another is at least as good in both and better in one; identical points are all kept."""
    front = [i for i, (x, y) in enumerate(points)
             if not any(ox <= x and oy >= y and (ox < x or oy > y) for ox, oy in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
