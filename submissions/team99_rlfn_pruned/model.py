"""RLFN, the paper model (bytedance/RLFN model/rlfn.py): 52 channels, 6 RLFBs. Input range [0, 255]."""

from __future__ import annotations

from ntirekit.models.rlfn import RLFN

__all__ = ["RLFN"]
