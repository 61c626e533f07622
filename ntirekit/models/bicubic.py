"""Bicubic upsampling as a reference "network": MATLAB's ``imresize(lr, scale, 'bicubic')``, no parameters.

The bicubic row of the NTIRE ESR reports is this (MATLAB's cubic kernel, a = -0.5, no antialiasing when
enlarging): the kit's exact re-implementation :func:`ntirekit.data.bicubic.imresize`, in float64 on the CPU, image
by image. Baseline entry ``bicubic`` (``reference = true``): the quality tracks show it beside the entries; it is
never ranked.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ntirekit.data.bicubic import imresize


class Bicubic(nn.Module):
    """``(N, C, h, w) -> (N, C, scale*h, scale*w)``, any data range (the kernel is linear)."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
        out = np.stack([imresize(img, self.scale, antialiasing=False) for img in images])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype)
