"""Where ``ntirekit score`` takes an upload and its reference from (the kit's side; the scoring program reads only
folders Codabench prepared).

- :func:`open_upload`: a results zip is vetted member by member and extracted into a fresh folder only
  (:mod:`ntirekit.pack.safezip`: no path outside it, no link, zip bombs stopped by their metadata and by the bytes
  they produce), then listed like a folder upload (:func:`ntirekit.score.layout.list_files`);
- :func:`open_reference`: a reference folder (``reference.json``, what a competition bundle holds), or the data
  ``ntirekit eval`` reads, with eval's own readers: an image dataset in any layout ``eval --data`` takes (HR images
  read as eval reads them, :meth:`ntirekit.data.images.PairSource.load_hr`: mod-cropped to the scale, an HR smaller
  than the scale a ``DataError``), or VQE clips (the clean clip of each compressed one, as
  :func:`ntirekit.eval.tracks.vqe.find_videos` pairs them, or a folder of clean clips);
- :func:`write_reference_folder`: a :class:`~ntirekit.score.reference.Reference` as a reference folder (8-bit RGB
  PNGs, lossless: the scoring program reads the very pixels ``eval`` compares with).
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Mapping

import numpy as np

from ntirekit.data import DataError
from ntirekit.data.images import ImageDataset, open_image_dataset, write_image
from ntirekit.data.video import Clip, read_clip, yuv_name_info
from ntirekit.eval.tracks.vqe import VideoPair, VqeDataError, find_videos
from ntirekit.pack.formats import detect_format
from ntirekit.pack.report import Report
from ntirekit.pack.safezip import Limits, safe_extract
from ntirekit.quality.vqe_scoring import scored_frames
from ntirekit.score.layout import list_files
from ntirekit.score.reference import (REFERENCE_JSON, RefImage, RefVideo, Reference, ReferenceDataError,
                                      read_reference_folder, reference_frame_file, reference_json)

__all__ = ["open_upload", "detect_track", "open_reference", "write_reference_folder"]


def open_upload(results: str | os.PathLike, scratch: str | os.PathLike, report: Report,
                limits: Limits = Limits()) -> dict[str, Path]:
    """The files of an upload (a folder, or a zip extracted into ``scratch``, a folder that does not exist yet) as
    ``{path in the upload: file}``; every problem goes into ``report``. An archive that breaks a whole-archive limit
    gives ``{}``."""
    results = Path(results)
    if results.is_dir():
        return list_files(results, report)
    if not results.exists():
        report.error("not-found", f"{results}: no such file or folder")
        return {}
    safe_extract(results, scratch, report, limits)
    if not Path(scratch).is_dir():              # not a zip that opens (the reason is in report): nothing extracted
        return {}
    return list_files(scratch, report)


def detect_track(ref: str | os.PathLike, files: Mapping[str, Path], *, scale: int = 4,
                 split: str | None = None) -> str:
    """``esr`` or ``vqe``, from the reference first (it is the organizer's): what a reference folder says; vqe for
    compressed clips as ``eval --track vqe`` reads them; esr for an image dataset (opened at ``scale`` and ``split``,
    as :func:`open_reference` opens it); else from the upload's layout (frames in one folder per video: vqe), else
    esr."""
    return _detect(Path(ref), files, scale, split)[0]


_Found = Reference | list[VideoPair] | ImageDataset | None


def _detect(root: Path, files: Mapping[str, Path], scale: int, split: str | None) -> tuple[str, _Found]:
    """(:func:`detect_track`'s track, what its probe read: the reference folder's :class:`Reference`, the VQE clip
    pairs, the image dataset; None when the track comes from the upload's layout)."""
    if (root / REFERENCE_JSON).is_file():
        reference = read_reference_folder(root)
        return reference.track, reference
    try:
        return "vqe", find_videos(root)
    except (VqeDataError, OSError, ValueError):
        pass
    try:
        return "esr", open_image_dataset(root, scale=scale, split=split or "valid")
    except (DataError, OSError):
        pass
    return ("vqe" if detect_format(files) == "vqe-results" else "esr"), None


def _clean_frame(clip: Clip, number: int) -> np.ndarray:
    return clip.frames[number - 1]


def _clean_clips(ref: Path, videos: list[VideoPair] | None = None) -> list[tuple[str, Clip]]:
    """``(video name, clean clip)`` of VQE data: each compressed clip's source as eval pairs them (named like the
    compressed clip, only the frames that were compressed; ``videos``: the pairs when already found), or every clip
    of a folder of clean clips (folders of PNG frames, ``.yuv`` files)."""
    try:
        return [(p.name, read_clip(p.gt).head(p.gt_frames)) for p in (find_videos(ref) if videos is None else videos)]
    except VqeDataError:
        pass
    if not ref.is_dir():
        raise ReferenceDataError(f"{ref}: not a folder of clips")
    items = [p for p in sorted(ref.iterdir())
             if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() == ".yuv")]
    clips = [(p.name if p.is_dir() else yuv_name_info(p)[0], read_clip(p)) for p in items]
    if not clips:
        raise ReferenceDataError(f"{ref}: no clips (compressed clips with their clean sources as 'eval --track vqe "
                                 "--data' takes them, or folders of clean PNG frames)")
    return clips


def open_reference(ref: str | os.PathLike, track: str | None, *, scale: int = 4, split: str | None = None,
                   files: Mapping[str, Path] | None = None) -> Reference:
    """The reference of ``track`` at ``ref`` (module docstring); ``track`` None: the one :func:`detect_track` finds
    (``files``: the upload), the reference read once, by the probe that found it. Raises
    :class:`ReferenceDataError` (or the data layer's ``DataError``) with one line when it cannot be read."""
    root = Path(ref)
    found: _Found = None
    if track is None:
        track, found = _detect(root, files or {}, scale, split)
    if (root / REFERENCE_JSON).is_file():
        reference = found if isinstance(found, Reference) else read_reference_folder(root)
        if reference.track != track:
            raise ReferenceDataError(f"{root}: a {reference.track} reference, but the upload is scored as {track}")
        return reference
    if track == "esr":
        dataset = found if isinstance(found, ImageDataset) else open_image_dataset(root, scale=scale,
                                                                                   split=split or "valid")
        if not dataset.has_hr:
            raise ReferenceDataError(f"{root}: {dataset.name} has no HR images to score against")
        images = tuple(RefImage(s.name, partial(s.load_hr, scale)) for s in dataset.sources)
        return Reference("esr", f"{root} ({dataset.name})", images=images)
    try:
        clips = _clean_clips(root, found if isinstance(found, list) else None)
    except (DataError, OSError) as exc:
        raise ReferenceDataError(f"{root}: {exc}") from None
    videos = tuple(RefVideo(name, len(c), partial(_clean_frame, c)) for name, c in clips)
    return Reference("vqe", str(root), videos=videos)


def write_reference_folder(reference: Reference, out: str | os.PathLike, frame_step: int = 1) -> Path:
    """Write ``reference`` as a reference folder (:mod:`ntirekit.score.reference`) at ``out`` (a new folder): every
    HR image, or each video's frames ``step, 2·step, ...``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=False)
    if reference.track == "esr":
        for image in reference.images:
            write_image(out / f"{image.name}.png", image.load())
        meta = reference_json("esr", images=[i.name for i in reference.images])
    else:
        for video in reference.videos:
            for index in scored_frames(video.frames, frame_step):
                write_image(out / reference_frame_file(video.name, index + 1), video.load(index + 1))
        meta = reference_json("vqe", videos={v.name: v.frames for v in reference.videos}, frame_step=frame_step)
    (out / REFERENCE_JSON).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out
