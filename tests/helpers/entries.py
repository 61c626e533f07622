"""Tiny entry folders written into temporary directories for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_MODEL = '''
import torch
from torch import nn


class TinySR(nn.Module):
    """conv 3->3*s*s then pixel shuffle: a real x{scale} model small enough for any test."""

    def __init__(self, scale: int = 4, channels: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.conv(x))
'''


def write_entry(root: Path, name: str, *, model_code: str = TINY_MODEL, factory: str = "model.py:TinySR",
                extra_toml: str = "", scale: int = 4, data_range: float = 1.0, track: str = "esr",
                task: str = "sr") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(model_code)
    (folder / "entry.toml").write_text(textwrap.dedent(f'''\
        name = "{name}"
        track = "{track}"
        task = "{task}"
        scale = {scale}
        data_range = {data_range}

        [model]
        factory = "{factory}"
        kwargs = {{ scale = {scale} }}
        ''') + extra_toml)
    return folder
