"""What an upload holds and which of its files answer which reference image or frame; every misfit is one line.

An upload is untrusted: :func:`list_files` walks a folder without following any link and lists regular files only;
:func:`match_images` (``esr-results``) and :func:`match_frames` (``vqe-results``) pair its files with the reference,
by the names :mod:`ntirekit.pack.formats` defines (the ones ``eval --save-sr``/``--save-frames`` write and ``pack``
zips). Each problem goes into a :class:`~ntirekit.pack.report.Report` as one line with a stable code:

- ``missing-image`` / ``missing-video`` / ``missing-frames``: a reference image, video or scored frame has no file;
- ``extra-file`` / ``extra-video`` / ``extra-frames``: a file the reference has no place for;
- ``misnamed``: a file that looks meant for a reference item under another name (the LR suffix ``x4``, another case,
  another extension, a frame name that is not ``001.png``);
- ``nested-folder``: a file one folder too deep (all of them at once: one line for the folder that wraps them,
  :func:`wrapping_folder`, checked first by the scoring);
- ``symlink``, ``special-file``, ``bad-name``, ``too-many-files``: what no upload may hold.

Hidden files (``.DS_Store``) and ``__MACOSX/`` are left out with one warning. ``readme.txt`` and ``MANIFEST.json``
(written by ``ntirekit pack``) belong at the root. One kind of problem names at most :data:`SHOWN` items on lines of
their own, then one line counts the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from ntirekit.core.zipvet import name_character_problem
from ntirekit.pack.formats import FRAME_NAME, LR_SUFFIX, MANIFEST, README
from ntirekit.pack.report import Report
from ntirekit.quality.vqe_scoring import scored_frames

__all__ = ["MAX_UPLOAD_FILES", "SHOWN", "list_files", "wrapping_folder", "match_images", "match_frames", "image_file"]

#: the most files an upload may hold (a VQE test set of every frame is a few thousand)
MAX_UPLOAD_FILES = 100_000
#: the deepest folder an upload may have (a video's frames sit one folder deep)
MAX_DEPTH = 8
#: items of one kind of problem named on lines of their own before one line counts the rest
SHOWN = 12
_JUNK = "__MACOSX"


def image_file(name: str) -> str:
    """The file an upload holds for the reference image ``name``: ``<name>.png`` (the HR image's name)."""
    return f"{name}.png"


def _one_per_line(report: Report, code: str, items: Sequence[tuple[str, str]], what: str) -> None:
    """``(path, message)`` items as problems: :data:`SHOWN` on lines of their own, then one line for the rest."""
    for path, message in items[:SHOWN]:
        report.error(code, message, path)
    if len(items) > SHOWN:
        report.error(code, f"and {len(items) - SHOWN} more {what}")


def list_files(root: str | os.PathLike, report: Report, max_files: int = MAX_UPLOAD_FILES) -> dict[str, Path]:
    """Every regular file below ``root`` as ``{posix path relative to root: path}``, links never followed.

    Symbolic links, devices, FIFOs, sockets and names with control or invisible characters are problems (never
    read); hidden files and ``__MACOSX/`` are left out with a warning; past ``max_files`` files or :data:`MAX_DEPTH`
    folders the walk stops with a problem.
    """
    files: dict[str, Path] = {}
    skipped: list[str] = []

    def visit(folder: str, prefix: str, depth: int) -> bool:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if entry.name.startswith(".") or entry.name == _JUNK:
                skipped.append(rel)
                continue
            bad = name_character_problem(entry.name)
            if bad:
                report.error("bad-name", bad, ascii(rel))
            elif entry.is_symlink():
                report.error("symlink", "a symbolic link (links are never followed)", rel)
            elif entry.is_dir(follow_symlinks=False):
                if depth >= MAX_DEPTH:
                    report.error("nested-folder", f"folders nested deeper than {MAX_DEPTH}", rel)
                elif not visit(entry.path, rel + "/", depth + 1):
                    return False
            elif entry.is_file(follow_symlinks=False):
                if len(files) >= max_files:
                    report.error("too-many-files", f"more than {max_files:,} files; the rest was not looked at")
                    return False
                files[rel] = Path(entry.path)
            else:
                report.error("special-file", "a device, FIFO or socket", rel)
        return True

    visit(os.fspath(root), "", 0)
    if skipped:
        report.warn("hidden-files", f"{len(skipped)} hidden file(s) or __MACOSX/ left out (e.g. {skipped[0]})")
    return files


def wrapping_folder(paths: Sequence[str], videos: Sequence[str] = ()) -> str | None:
    """The one folder that holds every path of an upload, readme included (a zipped folder rather than its
    content), or None. A folder named like a reference video (``videos``) is a video's folder, not a wrapper."""
    if not paths or any("/" not in p for p in paths):
        return None
    tops = {p.split("/", 1)[0] for p in paths}
    top = tops.pop()
    return top if not tops and top not in videos else None


def _content(files: Mapping[str, Path]) -> dict[str, Path]:
    """The files that answer reference items: all but ``readme.txt`` and ``MANIFEST.json`` at the root (in any case:
    a ``README.TXT`` is the readme check's to report)."""
    return {p: f for p, f in files.items() if p.casefold() not in (README, MANIFEST.casefold())}


def match_images(files: Mapping[str, Path], names: Sequence[str], report: Report) -> dict[str, Path]:
    """``{reference image name: its SR file}`` of an ``esr-results`` upload; every misfit is one problem line."""
    content = _content(files)
    wanted = {image_file(n): n for n in names}
    by_fold = {f.casefold(): f for f in wanted}
    by_stem = {n.casefold(): image_file(n) for n in names}
    matched = {wanted[rel]: content[rel] for rel in sorted(content) if rel in wanted}
    meant: set[str] = set()
    misnamed, nested, extra = [], [], []
    for rel in sorted(p for p in content if p not in wanted):
        if "/" in rel:
            nested.append((rel, "in a folder: SR images sit at the root of the upload, beside readme.txt"))
            meant.add(rel.rpartition("/")[2])
            continue
        stem, _, suffix = rel.rpartition(".")
        target = by_fold.get(rel.casefold()) or by_stem.get(stem.casefold()) \
            or by_stem.get(LR_SUFFIX.sub("", stem).casefold())
        if target is not None and wanted[target] not in matched and target not in meant:
            why = ("carries the LR suffix; SR images are named like the HR image"
                   if LR_SUFFIX.sub("", stem).casefold() != stem.casefold() else
                   "is not a .png file name" if suffix.lower() != "png" else "differs in case")
            misnamed.append((rel, f"{why}: expected {target}"))
            meant.add(target)
        elif suffix.lower() != "png":
            extra.append((rel, "not an SR image: an ESR upload holds <HR name>.png images and readme.txt only"))
        else:
            extra.append((rel, "not an image of the reference set"))
    _one_per_line(report, "misnamed", misnamed, "misnamed files")
    _one_per_line(report, "nested-folder", nested, "files in folders")
    _one_per_line(report, "extra-file", extra, "extra files")
    missing = [(f, "no SR image for it") for f in wanted if wanted[f] not in matched and f not in meant]
    _one_per_line(report, "missing-image", missing, "missing images")
    return matched


def match_frames(files: Mapping[str, Path], videos: Mapping[str, int], frame_step: int,
                 report: Report) -> dict[tuple[str, int], Path]:
    """``{(video, 1-based frame number): file}`` of a ``vqe-results`` upload for the scored frames of each video
    (``videos``: ``{name: frame count}``; ``frame_step`` 1 scores every frame, 10 frames 010, 020, ...)."""
    content = _content(files)
    wanted = {v: {i + 1 for i in scored_frames(n, frame_step)} for v, n in videos.items()}
    matched: dict[tuple[str, int], Path] = {}
    at_root, nested, misnamed = [], [], []
    extra_videos: dict[str, int] = {}
    unscored: dict[str, list[str]] = {}
    for rel in sorted(content):
        parts = rel.split("/")
        if len(parts) == 1:
            at_root.append((rel, "the upload's root holds readme.txt and one folder of PNG frames per video"))
            continue
        if len(parts) > 2:
            nested.append((rel, "frames sit directly in their video's folder"))
            continue
        video, name = parts
        if video not in wanted:
            extra_videos[video] = extra_videos.get(video, 0) + 1
            continue
        m = FRAME_NAME.match(name)
        if not m:
            misnamed.append((rel, "not a frame name (001.png, 002.png, ... as ffmpeg's %3d.png numbers them)"))
            continue
        number = int(m.group(2))
        if number in wanted[video] and (video, number) not in matched:
            matched[(video, number)] = content[rel]
        elif number in wanted[video]:
            misnamed.append((rel, f"a second file for frame {number} (also {matched[(video, number)].name})"))
        else:
            unscored.setdefault(video, []).append(name)
    _one_per_line(report, "extra-file", at_root, "files at the root")
    _one_per_line(report, "nested-folder", nested, "files in nested folders")
    _one_per_line(report, "misnamed", misnamed, "misnamed frames")
    _one_per_line(report, "extra-video", [(v + "/", f"not a video of the reference set ({n} files)")
                                          for v, n in sorted(extra_videos.items())], "extra videos")
    step = ("every 10th frame (010.png, 020.png, ...)" if frame_step == 10 else
            "every frame" if frame_step == 1 else f"every {frame_step}th frame")
    _one_per_line(report, "extra-frames", [
        (v + "/", f"{len(names)} frame(s) that are not scored ({', '.join(names[:3])}{', ...' * (len(names) > 3)}): "
                  f"the video has {videos[v]} frames and the scoring takes {step}")
        for v, names in sorted(unscored.items())], "videos with extra frames")
    missing_videos, missing_frames = [], []
    for video, numbers in wanted.items():
        gone = sorted(n for n in numbers if (video, n) not in matched)
        if gone and len(gone) == len(numbers):
            missing_videos.append((video + "/", f"no frames for this video ({len(numbers)} scored: {step})"))
        elif gone:
            shown = ", ".join(f"{n:03d}.png" for n in gone[:3]) + (", ..." if len(gone) > 3 else "")
            missing_frames.append((video + "/", f"{len(gone)} of its {len(numbers)} scored frames are missing "
                                                f"({shown})"))
    _one_per_line(report, "missing-video", missing_videos, "missing videos")
    _one_per_line(report, "missing-frames", missing_frames, "videos with missing frames")
    return matched
