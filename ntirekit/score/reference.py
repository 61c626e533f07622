"""The ground truth an upload is scored against: images (ESR) or videos (VQE), each read only when it is scored.

A :class:`Reference` comes from one of two places:

- the data ``ntirekit eval`` reads (an image dataset, or compressed clips with their clean sources), opened by
  :func:`ntirekit.score.sources.open_reference` with the kit's own readers, so that ``score`` compares with the very
  pixels ``eval`` compared with;
- a **reference folder**, what ``ntirekit codabench bundle`` zips as a task's reference data and Codabench unpacks
  into ``$input/ref`` (:func:`read_reference_folder`; needs numpy and Pillow only)::

      reference.json                 {"format": "ntirekit-scoring-reference", "version": 1, "track": "esr",
                                      "images": ["0801", "0802", ...]}
      0801.png, 0802.png, ...        the HR images, mod-cropped to the scale, 8-bit RGB

      reference.json                 {"format": ..., "track": "vqe", "frame_step": 10,
                                      "videos": {"001": {"frames": 300}, ...}}
      001/010.png, 001/020.png, ...  the clean frames the scoring takes (all, or every 10th), numbered from 1

Reference data are the organizer's: a reference that cannot be read is a :class:`ReferenceDataError` (one line), never
a problem of the upload.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ntirekit.core.errors import NtirekitError
from ntirekit.quality.vqe_scoring import scored_frames
from ntirekit.score.png import PngError, read_png

__all__ = ["REFERENCE_JSON", "REFERENCE_FORMAT", "TRACKS", "ReferenceDataError", "RefImage", "RefVideo", "Reference",
           "read_reference_folder", "reference_json", "reference_frame_file"]

REFERENCE_JSON = "reference.json"
REFERENCE_FORMAT = "ntirekit-scoring-reference"
TRACKS = ("esr", "vqe")


class ReferenceDataError(NtirekitError, ValueError):
    """Reference data (the organizer's) that cannot be read as such; the message is one line."""


@dataclass(frozen=True)
class RefImage:
    """One reference image: its name (the HR file's stem) and how to read it (RGB ``uint8`` ``HxWx3``)."""

    name: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class RefVideo:
    """One reference video: its name, its frame count and how to read its clean frame ``k`` (1-based)."""

    name: str
    frames: int
    load: Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Reference:
    """The reference of one track: ``images`` (esr) or ``videos`` (vqe). ``frame_step``: the reference holds only
    frames ``step, 2·step, ...`` of each video (a reference folder made for that scoring); None: every frame."""

    track: str
    source: str
    images: tuple[RefImage, ...] = ()
    videos: tuple[RefVideo, ...] = ()
    frame_step: int | None = None

    @property
    def size(self) -> str:
        """``"5 images"`` or ``"3 videos"``."""
        n = len(self.images) if self.track == "esr" else len(self.videos)
        return f"{n} {'image' if self.track == 'esr' else 'video'}{'s' if n != 1 else ''}"


def reference_frame_file(video: str, number: int) -> str:
    """Where a reference folder keeps frame ``number`` (1-based) of ``video``."""
    return f"{video}/{number:03d}.png"


def reference_json(track: str, *, images: list[str] | None = None, videos: dict[str, int] | None = None,
                   frame_step: int = 1) -> dict[str, Any]:
    """The ``reference.json`` of a reference folder (module docstring)."""
    if track == "esr":
        return {"format": REFERENCE_FORMAT, "version": 1, "track": "esr", "images": list(images or [])}
    return {"format": REFERENCE_FORMAT, "version": 1, "track": "vqe", "frame_step": int(frame_step),
            "videos": {name: {"frames": int(n)} for name, n in (videos or {}).items()}}


def _load_checked(path: Path) -> np.ndarray:
    try:
        return read_png(path)
    except PngError as exc:
        raise ReferenceDataError(f"reference data {path}: {exc}") from None


def _frame_loader(root: Path, video: str, number: int) -> np.ndarray:
    return _load_checked(root / reference_frame_file(video, number))


def _safe_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ReferenceDataError(f"{where}: {name!r} is not a file name")
    return name


def read_reference_folder(root: str | os.PathLike) -> Reference:
    """The :class:`Reference` of a reference folder (module docstring); its files are checked to exist, and read
    (bounded, as uploads are: :func:`ntirekit.score.png.read_png`) only when scored."""
    root = Path(root)
    where = str(root / REFERENCE_JSON)
    try:
        meta = json.loads((root / REFERENCE_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReferenceDataError(f"{where}: not readable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != REFERENCE_FORMAT or meta.get("version") != 1:
        raise ReferenceDataError(f"{where}: not a {REFERENCE_FORMAT} file of version 1")
    track = meta.get("track")
    if track == "esr":
        names = meta.get("images")
        if not isinstance(names, list) or not names:
            raise ReferenceDataError(f"{where}: 'images' must be a non-empty list of names")
        images = tuple(RefImage(n, partial(_load_checked, root / f"{n}.png")) for n in
                       (_safe_name(n, where) for n in names))
        missing = [f"{i.name}.png" for i in images if not (root / f"{i.name}.png").is_file()]
        if missing:
            raise ReferenceDataError(f"{root}: the reference images {', '.join(missing[:3])} are missing")
        return Reference("esr", str(root), images=images)
    if track == "vqe":
        videos, step = meta.get("videos"), meta.get("frame_step")
        if not isinstance(videos, dict) or not videos or not isinstance(step, int) or step < 1:
            raise ReferenceDataError(f"{where}: 'videos' must map names to {{\"frames\": N}} and 'frame_step' be >= 1")
        out = []
        for name, info in videos.items():
            frames = info.get("frames") if isinstance(info, dict) else None
            if not isinstance(frames, int) or frames < step:
                raise ReferenceDataError(f"{where}: video {name!r} needs a frame count of at least {step}")
            out.append(RefVideo(_safe_name(name, where), frames, partial(_frame_loader, root, name)))
            gone = [i + 1 for i in scored_frames(frames, step)
                    if not (root / reference_frame_file(name, i + 1)).is_file()]
            if gone:
                raise ReferenceDataError(f"{root / name}: the reference frames {gone[:3]} are missing")
        return Reference("vqe", str(root), videos=tuple(out), frame_step=step)
    raise ReferenceDataError(f"{where}: 'track' must be one of {', '.join(TRACKS)}, got {track!r}")
