"""Data for ntirekit: image pairs and datasets, MATLAB-exact bicubic, the embedded sample set (and video clips).

Light at import time: the names below are loaded from their submodules on first use.

- :mod:`ntirekit.data.bicubic`: :func:`imresize` (MATLAB's ``imresize(..., 'bicubic')``, bit-exact on Set5 x4).
- :mod:`ntirekit.data.images`: :func:`read_image`, :func:`write_image`, :func:`modcrop`, :class:`ImagePair`,
  :class:`ImageDataset`, :func:`open_image_dataset` (DIV2K, DIV2K+LSDIR, generic HR/LR folders, HR-only folders,
  ``"sample"``).
- :mod:`ntirekit.data.sample`: the embedded sample photos and :func:`div2k_like_inputs` (DIV2K-shaped LR crops).
- :mod:`ntirekit.data.timing`: the named LR inputs the timing tracks run on (``"div2k-like"``, or any dataset).
"""

from __future__ import annotations

import importlib
from typing import Any

from ntirekit.core.errors import NtirekitError


class DataError(NtirekitError):
    """A dataset or image that cannot be used: missing, unreadable, empty, unpaired. The message is one line."""


_LAZY = {
    "imresize": "ntirekit.data.bicubic",
    "read_image": "ntirekit.data.images",
    "write_image": "ntirekit.data.images",
    "modcrop": "ntirekit.data.images",
    "ImagePair": "ntirekit.data.images",
    "ImageDataset": "ntirekit.data.images",
    "open_image_dataset": "ntirekit.data.images",
    "sample_dataset": "ntirekit.data.images",
    "div2k_like_inputs": "ntirekit.data.sample",
}

__all__ = ["DataError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
