"""ECBSR (Zhang, Zeng, Zhang: "Edge-oriented Convolution Block for Real-time Super Resolution on Mobile Devices",
ACM MM 2021; xindongzhang/ECBSR ``models/ecbsr.py``), written on the kit's :class:`ntirekit.nn.rep.ECB`.

Structure: ``ECB(colors -> C)``, ``module_nums`` x ``ECB(C -> C)`` (PReLU), ``ECB(C -> colors*scale², linear)``, plus a
global residual (the input repeated ``scale²`` times along channels, i.e. nearest-neighbour upsampling after the pixel
shuffle), then ``PixelShuffle(scale)``.

Colour handling (explicit, unlike upstream): upstream trains on the Y channel only (``colors=1``), where the residual
``backbone(x) + x`` broadcasts a 1-channel input over ``scale²`` channels. This entry runs on RGB (``colors=3``, the
challenge's input); the residual is written as ``x.repeat_interleave(scale², dim=1)``, which is what the broadcast did
for ``colors=1`` and is the per-colour nearest upsampling for ``colors=3``. Input range [0, 255] as upstream.

``deploy=False`` builds the training form (five branches per ECB); ``deploy=True`` builds the deploy form (one plain
3x3 conv per ECB, keys ``backbone.N.rep_conv.*``). ``ntirekit reparam ecbsr`` converts the one into the other.
Upstream publishes no trained weights, so the entry has none.
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.nn.rep import ECB, reparameterize_model


class ECBSR(nn.Module):
    def __init__(self, module_nums: int = 4, channel_nums: int = 16, with_idt: bool = False, act_type: str = "prelu",
                 scale: int = 4, colors: int = 3, depth_multiplier: float = 2.0, deploy: bool = False):
        super().__init__()
        self.scale = scale
        self.colors = colors
        layers = [ECB(colors, channel_nums, depth_multiplier, act_type, with_idt, deploy)]
        layers += [ECB(channel_nums, channel_nums, depth_multiplier, act_type, with_idt, deploy)
                   for _ in range(module_nums)]
        layers += [ECB(channel_nums, colors * scale * scale, depth_multiplier, "linear", with_idt, deploy)]
        self.backbone = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.backbone(x) + x.repeat_interleave(self.scale * self.scale, dim=1))

    def reparameterize(self) -> "ECBSR":
        """Convert every ECB into one plain 3x3 conv, in place (idempotent)."""
        return reparameterize_model(self)
