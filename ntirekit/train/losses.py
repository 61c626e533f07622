"""Pixel losses: ``l1``, ``charbonnier`` (``sqrt(d² + eps²)``, eps 1e-3) and ``l2`` (MSE); all means over elements."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "get_loss", "charbonnier"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((output - target) ** 2 + eps * eps).mean()


LOSSES: dict[str, Loss] = {"l1": F.l1_loss, "charbonnier": charbonnier, "l2": F.mse_loss}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})") from None
