"""What a dataset is, by content: its identity, a cheap check of every image's header, and a full read.

**Identity** (:func:`identity_of`, :func:`dataset_identity`): ``<name>-<digest>``, e.g. ``Set5-3f9a2c1d``. The name
is the dataset's human name (the folder's, or the split's for a DIV2K-style root: ``DIV2K_valid``); the digest is the
first 8 hex digits of the SHA-256 of the list of files the dataset reads, one ``<path relative to the dataset
folder>\\t<size in bytes>`` line per file, sorted. No pixel is read. So two folders named alike (a corrupt or edited
copy of ``Set5`` elsewhere) have different identities and their results never mix, a copy of a dataset at another
path keeps its identity (the folder's location is not part of it), and a dataset whose files or sizes change is a
new one. The built-in datasets keep their plain names, stable across machines and versions: ``sample`` (the embedded
photos) and ``div2k-like`` (the timing inputs). A change that keeps every file's size (a pixel edited in an
uncompressed BMP) is not seen: that would take reading every byte.

**Header check** (:func:`check_image_dataset`, :func:`check_image_files`): every image file's header is read
(Pillow opens files lazily: the format, the size and, for JPEG, the EXIF orientation come from the first bytes), a
PNG must end with its ``IEND`` chunk and an uncompressed BMP must hold the pixel rows its header declares (the usual
ways a copy is cut short), and every LR/HR pair must have matching sizes. One :class:`~ntirekit.data.DataError`
names the first bad file. A few milliseconds per image, nothing decoded and nothing written. What only a full
decode finds (a damaged compressed stream inside a complete file) is found by :func:`read_every_image`, which the
runner calls when an entry's evaluation fails with a data error, so that such a fault is the dataset's error and
never an entry's record.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Iterable

from ntirekit.core.records import DIGEST_CHARS, human_name
from ntirekit.data import DataError
from ntirekit.data.images import IMAGE_EXTENSIONS, ImageDataset, open_image_dataset, read_image
from ntirekit.data.timing import DIV2K_LIKE
from ntirekit.data.video import CLIP_JSON

__all__ = ["BUILTIN", "DIGEST_CHARS", "identity_of", "dataset_identity", "folder_identity", "human_name",
           "image_size", "check_image_dataset", "check_image_files", "read_every_image", "describe_data"]

#: datasets known by name alone: their content is part of the kit
BUILTIN = frozenset({"sample", DIV2K_LIKE})
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: EXIF orientations that swap width and height
_TRANSPOSED = frozenset({5, 6, 7, 8})


def identity_of(name: str, files: Iterable[tuple[str, int]]) -> str:
    """``<name>-<digest>`` of ``(relative path, size in bytes)`` pairs (see the module docstring)."""
    listing = "".join(f"{path}\t{size}\n" for path, size in sorted(files))
    return f"{name}-{hashlib.sha256(listing.encode('utf-8')).hexdigest()[:DIGEST_CHARS]}"


def _relative(path: Path, root: Path | None) -> str:
    try:
        return path.relative_to(root).as_posix() if root is not None else path.name
    except ValueError:
        return path.name


def _stat_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def dataset_identity(dataset: ImageDataset) -> str:
    """The identity of an opened image dataset: its name and the files its pairs read (the built-in sample: its
    name)."""
    if dataset.name in BUILTIN and dataset.root is None:
        return dataset.name
    files = [(_relative(p, dataset.root), _stat_size(p)) for s in dataset.sources for p in (s.hr, s.lr)
             if isinstance(p, Path)]
    return identity_of(dataset.name, files)


def _files_below(root: Path) -> list[Path]:
    """Every regular, non-hidden file below ``root``."""
    return [p for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]


def _clean_sources(root: Path) -> dict[str, Path]:
    """The clean clips that the compressed clips below ``root`` name in their ``clip.json`` (``ntirekit data
    compress``), found where the vqe track looks for them: as given, beside the clip, beside the data folder."""
    found: dict[str, Path] = {}
    for meta_file in root.rglob(CLIP_JSON):
        try:
            source = str(json.loads(meta_file.read_text(encoding="utf-8")).get("source") or "")
        except (OSError, ValueError, AttributeError):
            continue
        clip = meta_file.parent
        for candidate in (Path(source), clip.parent / source, root / source, root.parent / source):
            if source and candidate.exists():
                found[_relative(clip, root)] = candidate
                break
    return found


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """``(listed path, file)`` of every regular, non-hidden file below ``root``, and of the clean clips its
    compressed clips name (listed under ``<clip>/clean/``)."""
    files = [(_relative(p, root), p) for p in _files_below(root)]
    for clip, source in _clean_sources(root).items():
        sources = [source] if source.is_file() else _files_below(source)
        files += [(f"{clip}/clean/{_relative(p, source)}", p) for p in sources]
    return files


def folder_identity(folder: str | Path, name: str | None = None) -> str:
    """The identity of a folder of any files (clips, frames): every regular, non-hidden file below it, and the files
    of the clean clips its compressed clips name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    return identity_of(name or root.resolve().name, [(rel, _stat_size(p)) for rel, p in _folder_files(root)])


# ---------------------------------------------------------------------------------------------------------- headers

def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file as :func:`ntirekit.data.images.read_image` will read it (EXIF
    orientation applied), from its header; a file whose header does not decode, a PNG without its end chunk or a BMP
    shorter than its pixel rows raises :class:`DataError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    size = _stat_size(path)
    if size == 0:
        raise DataError(f"{path}: not a readable image (empty file)")
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
            orientation = img.getexif().get(0x0112, 1) if fmt in ("JPEG", "MPO", "TIFF") else 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable image (its header does not decode: {reason[:120]})") from None
    if width < 1 or height < 1:
        raise DataError(f"{path}: not a readable image (header says {width}x{height})")
    with open(path, "rb") as f:
        if fmt == "PNG":
            f.seek(max(0, size - len(_PNG_END)))
            if f.read() != _PNG_END:
                raise DataError(f"{path}: not a readable image (a PNG without its end chunk: cut short?)")
        elif fmt == "BMP":
            _check_bmp_length(path, f.read(54), size)
    return (width, height) if orientation in _TRANSPOSED else (height, width)


def _check_bmp_length(path: Path, head: bytes, size: int) -> None:
    """An uncompressed BMP (BI_RGB, BI_BITFIELDS) must hold ``offset + stride * |height|`` bytes."""
    if len(head) < 34 or head[:2] != b"BM":
        return
    offset = struct.unpack_from("<I", head, 10)[0]
    header_size = struct.unpack_from("<I", head, 14)[0]
    if header_size < 40:                                 # OS/2 core header: leave it to the decoder
        return
    width, height = struct.unpack_from("<ii", head, 18)
    bits, compression = struct.unpack_from("<HI", head, 28)
    if compression not in (0, 3, 6):
        return
    stride = (bits * abs(width) + 31) // 32 * 4
    needed = offset + stride * abs(height)
    if size < needed:
        raise DataError(f"{path}: not a readable image (a BMP of {size:,} bytes; its header declares "
                        f"{needed:,}: cut short?)")


def check_image_dataset(dataset: ImageDataset) -> int:
    """Read the header of every file of ``dataset`` and check each pair's sizes as :meth:`PairSource.load` will
    (HR mod-cropped to the scale = scale x LR); returns the number of files checked. Built-in sources (the sample's
    photos) are not files and are skipped."""
    scale, checked = dataset.scale, 0
    for source in dataset.sources:
        hr = image_size(source.hr) if isinstance(source.hr, Path) else None
        lr = image_size(source.lr) if isinstance(source.lr, Path) else None
        checked += (hr is not None) + (lr is not None)
        if hr is not None and (hr[0] < scale or hr[1] < scale):
            raise DataError(f"{source.hr}: HR {hr[0]}x{hr[1]} is smaller than the scale {scale}")
        if hr is not None and lr is not None:
            cropped = (hr[0] - hr[0] % scale, hr[1] - hr[1] % scale)
            if cropped != (lr[0] * scale, lr[1] * scale):
                raise DataError(f"{source.lr}: LR {lr[0]}x{lr[1]} does not match HR {source.hr} ({cropped[0]}x"
                                f"{cropped[1]} after mod-crop) at x{scale}")
    return checked


def check_image_files(folder: str | Path) -> int:
    """Read the header of every image file below ``folder`` and of the clean clips it names (clip folders of PNG
    frames); returns how many."""
    root = Path(folder).expanduser()
    files = [p for _rel, p in _folder_files(root) if p.suffix.lower() in IMAGE_EXTENSIONS] if root.is_dir() else []
    for path in files:
        image_size(path)
    return len(files)


def read_every_image(data: str, scale: int, split: str | None, images: bool) -> None:
    """Decode every image of the dataset (``images``: an image dataset, each pair loaded as an entry would; else
    every image file below the folder): raises :class:`DataError` when one cannot be used."""
    if data in BUILTIN:
        return
    if images:
        for _pair in open_image_dataset(data, scale=scale, split=split or "valid"):
            pass
        return
    root = Path(data).expanduser()
    for _rel, path in _folder_files(root) if root.is_dir() else []:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            read_image(path)


def describe_data(data: str, scale: int, split: str | None, images: bool) -> str:
    """Check the dataset ``data`` as a run on it needs it (headers of every image, pair sizes) and return its
    identity; ``images``: an image dataset (LR/HR pairs at ``scale``; a DIV2K-style root opens ``split``, default
    valid), else a folder of files (clips). A bad dataset raises its one :class:`DataError`."""
    if data in BUILTIN:
        return data
    if images:
        dataset = open_image_dataset(data, scale=scale, split=split or "valid")
        check_image_dataset(dataset)
        return dataset_identity(dataset)
    check_image_files(data)
    return folder_identity(data)
