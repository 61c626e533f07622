"""Paths and files: whether a path, its links followed, stays inside a folder; the mode of a file the user writes."""

from __future__ import annotations

import os
from pathlib import Path


def resolves_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path`` with every link resolved is ``root`` (resolved too) or lies below it: a link that leads out
    of ``root`` does not."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    return resolved == root or root in resolved.parents


def user_file_mode() -> int:
    """The mode of a file the user writes: ``0666`` less the process's umask (``0644`` under the usual ``022``),
    for files first written as a temporary file (``mkstemp`` makes them ``0600``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
