"""Pixel losses: ``l1``, ``charbonnier`` (``sqrt(d² + eps²)``, eps 1e-3) and ``l2`` (MSE); all means over elements.

:class:`StagedLoss` switches between them at given optimiser steps, e.g. the NTIRE 2022 VQE winner's Charbonnier
then L2 ("three-step convergence": Charbonnier, L2, then L2 on the official data): ``staged_loss("charbonnier",
"l2", 0.7, steps)`` uses Charbonnier for steps 0 … 0.7·steps - 1 and L2 after. The trainer tells it the step
(:meth:`StagedLoss.set_step`, the number of steps already taken) before every step, so a resumed run switches at the
same step.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ntirekit.core.errors import OptionError

__all__ = ["LOSSES", "get_loss", "charbonnier", "StagedLoss", "staged_loss", "switch_step"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((output - target) ** 2 + eps * eps).mean()


LOSSES: dict[str, Loss] = {"l1": F.l1_loss, "charbonnier": charbonnier, "l2": F.mse_loss}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise OptionError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})") from None


class StagedLoss:
    """A loss that changes with the step: ``stages`` are ``(first_step, loss)`` pairs, the first at step 0, first
    steps increasing; a loss is a name of :data:`LOSSES` or a callable. Output and target are divided by ``scale``
    (an entry's ``data_range``) before the loss, so loss values mean the same for 1.0 and 255.0 entries."""

    def __init__(self, stages: Sequence[tuple[int, str | Loss]], scale: float = 1.0):
        starts = [int(start) for start, _ in stages]
        if not stages or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
            raise OptionError(f"loss stages must start at step 0 with increasing first steps, got {starts}")
        self.stages = [(int(start), loss) for start, loss in stages]
        self.losses = [get_loss(loss) if isinstance(loss, str) else loss for _, loss in stages]
        self.scale = float(scale)
        self.step = 0

    def stage_at(self, step: int) -> int:
        """Index of the stage that step ``step`` (0-based: steps already taken) uses."""
        return max(i for i, (start, _) in enumerate(self.stages) if start <= step)

    def name_at(self, step: int) -> str:
        loss = self.stages[self.stage_at(step)][1]
        return loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss))

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.losses[self.stage_at(self.step)]
        return loss(output / self.scale, target / self.scale)

    def describe(self) -> str:
        """``charbonnier loss`` or ``charbonnier loss, then l2 from step 700``."""
        return f"{self.name_at(0)} loss" + "".join(f", then {self.name_at(start)} from step {start}"
                                                   for start, _ in self.stages[1:])


def switch_step(switch_at: float, steps: int) -> int:
    """The first step of the second stage: ``round(switch_at * steps)`` for a fraction ``0 < switch_at < 1``, else
    ``switch_at`` itself as a step number."""
    if switch_at <= 0:
        raise OptionError(f"--switch-at must be a fraction in (0, 1) or a step >= 1, got {switch_at}")
    return round(switch_at * steps) if switch_at < 1 else int(switch_at)


def staged_loss(loss: str, then: str | None = None, switch_at: float = 0.7, steps: int = 1, *,
                scale: float = 1.0) -> StagedLoss:
    """``loss`` alone, or ``loss`` then ``then`` from step :func:`switch_step` on (a switch at step 0 or at or
    after the last step is refused: the run would use one loss only)."""
    if then is None:
        return StagedLoss([(0, loss)], scale)
    at = switch_step(switch_at, steps)
    if not 0 < at < steps:
        raise OptionError(f"--switch-at {switch_at} puts the switch at step {at}, outside 1 … {steps - 1}")
    return StagedLoss([(0, loss), (at, then)], scale)
