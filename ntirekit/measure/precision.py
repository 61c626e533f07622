"""Timing in another precision or memory layout, as timm's benchmark offers: automatic mixed precision and
channels-last tensors.

The challenges time fp32 (no half, no autocast; protocols.md §4); these options answer "how fast could it be", and
the precision is part of every record's device fingerprint (``fp32``, ``amp-fp16``, ``amp-bf16``, with ``-cl`` for
channels-last), so such figures are never ranked with fp32 ones. :func:`timed_form` wraps a model (an entry's
exported graph or a trusted module): its forward runs under ``torch.autocast`` with the precision's dtype and, when
asked, its 4-D tensors (convolution weights) are channels-last; :func:`channels_last_inputs` converts the inputs before
they are timed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ntirekit.core.errors import OptionError

#: precision name -> autocast dtype (None: plain fp32)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}


def precision_label(precision: str = "fp32", channels_last: bool = False) -> str:
    """The fingerprint's precision field: ``fp32``, ``amp-fp16``... with ``-cl`` for channels-last."""
    if precision not in PRECISIONS:
        raise OptionError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    return precision + ("-cl" if channels_last else "")


class TimedForm(nn.Module):
    """``model`` run under autocast (``dtype``); its inputs are made channels-last before timing
    (:func:`channels_last_inputs`), outside the timed call."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.model(x)
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.model(x)


def timed_form(model: nn.Module, precision: str = "fp32", channels_last: bool = False) -> nn.Module:
    """``model`` as it is timed under ``precision`` and ``channels_last`` (itself for fp32, contiguous layout)."""
    dtype = PRECISIONS[precision] if precision in PRECISIONS else None
    precision_label(precision, channels_last)
    if channels_last:
        for module in model.modules():
            for name, tensor in list(module._buffers.items()) + list(module._parameters.items()):
                if tensor is not None and tensor.dim() == 4:
                    tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    if dtype is None and not channels_last:
        return model
    return TimedForm(model, dtype)


def channels_last_inputs(inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``inputs`` in channels-last layout (4-D ones; the others as they are)."""
    return [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs]
