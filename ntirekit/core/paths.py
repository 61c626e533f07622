"""Path confinement: whether a path, its links followed, stays inside a folder."""

from __future__ import annotations

import os
from pathlib import Path


def resolves_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path`` with every link resolved is ``root`` (resolved too) or lies below it: a link that leads out
    of ``root`` does not."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    return resolved == root or root in resolved.parents
