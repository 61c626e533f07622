"""Image I/O and LR/HR image datasets, read the way the official NTIRE ESR harness reads them.

Images are RGB uint8 ``HxWx3`` numpy arrays everywhere in the kit. :func:`open_image_dataset` turns a spec into a lazy
:class:`ImageDataset` (file names are listed up front; pixels are read only when an item is accessed).

Layouts :func:`open_image_dataset` recognises, tried in this order on a folder ``ROOT``:

1. **DIV2K+LSDIR** (NTIRE 2023 on): ``ROOT/DIV2K_LSDIR_{split}_HR/<name>.png`` with
   ``ROOT/DIV2K_LSDIR_{split}_LR/<name>x4.png``.
2. **DIV2K**: ``ROOT/DIV2K_{split}_HR/0801.png`` with the LR in ``ROOT/DIV2K_{split}_LR_bicubic/X4/0801x4.png``
   (original DIV2K) or ``ROOT/DIV2K_{split}_LR/0801x4.png`` (NTIRE ESR layout). When both DIV2K+LSDIR and DIV2K
   folders exist for the split, DIV2K+LSDIR wins.
3. **Generic pairs**: ``ROOT/HR/<name>.<ext>`` with ``ROOT/LR_bicubic/X4/<name>x4.<ext>`` (also ``LR_bicubic/``,
   ``LR/X4/``, ``LR/``), e.g. Set5 as the SR papers ship it.

In all three an LR folder without its HR folder gives an LR-only dataset (``pair.hr is None``; e.g. the DIV2K test
split 0901-1000); an HR folder without an LR folder gives LR made by the kit's MATLAB-exact bicubic.

4. **A plain folder of images**: HR-only; the LR is made with :func:`ntirekit.data.bicubic.imresize` from the
   mod-cropped HR. Exception: a folder named like an LR folder (``X4``, ``LR``, ``*_LR``, ``LR_*``) is read as LR-only.

LR files pair with HR files by name: ``<name>x{scale}.<ext>`` (or ``<name>.<ext>``) with ``<name>.<ext>``; the
extensions may differ. HR is mod-cropped to a multiple of the scale (bottom/right rows and columns dropped) and must
then be exactly ``scale`` times the LR. Any unpaired file, empty folder or size mismatch is a :class:`DataError`.
``split`` only matters for DIV2K-style roots. The spec ``"sample"`` is the embedded set of :mod:`ntirekit.data.sample`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import cv2
import numpy as np

from ntirekit.core.errors import OptionError
from ntirekit.data import DataError
from ntirekit.data.bicubic import imresize
from ntirekit.data.sample import SAMPLE_NAMES, writable_photo

__all__ = ["IMAGE_EXTENSIONS", "read_image", "write_image", "modcrop", "make_lr", "ImagePair", "PairSource",
           "ImageDataset", "open_image_dataset", "list_images"]

IMAGE_EXTENSIONS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})


# ---------------------------------------------------------------------------------------------------------- I/O

def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.round(img / 257.0).astype(np.uint8)          # 65535 -> 255, 257*k -> k
    if np.issubdtype(img.dtype, np.floating):
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise DataError(f"{path}: unsupported pixel type {img.dtype}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 ``HxWx3``.

    Grayscale is repeated to 3 channels, alpha is dropped (as ``cv2.IMREAD_COLOR`` in the official harness does),
    16-bit is scaled by 1/257 and rounded, float images are read as [0, 1]. EXIF orientation is applied.
    A missing, unreadable or corrupt file raises :class:`DataError` naming the file.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)          # works for any path encoding, unlike cv2.imread
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if img is None:
        raise DataError(f"{path}: not a readable image (empty, corrupt or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    conversion = {2: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(
        img.shape[2] if img.ndim == 3 else img.ndim)
    if conversion is None or img.ndim not in (2, 3):
        raise DataError(f"{path}: unsupported image layout {img.shape}")
    return cv2.cvtColor(_to_uint8(img, path), conversion)     # channel copies only: exact, and SIMD-fast


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (``HxWx3``) or grayscale (``HxW``) uint8/uint16 image; the format follows the extension.

    Parent folders are created. Returns the path. Raises :class:`DataError` if the image cannot be encoded or written.
    """
    path = Path(path)
    img = np.asarray(rgb)
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: write_image needs uint8 or uint16 pixels, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]
    elif img.ndim != 2:
        raise DataError(f"{path}: write_image needs an HxWx3 or HxW image, got shape {img.shape}")
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(img))
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2 error"
        raise DataError(f"{path}: cannot encode as {path.suffix or '?'} ({reason})") from None
    if not ok:
        raise DataError(f"{path}: cannot encode as {path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf.tofile(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None
    return path


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale`` (a view, no copy)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR of a mod-cropped HR image: MATLAB's ``imresize(hr, 1/scale, 'bicubic')``."""
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR {h}x{w} is not a multiple of {scale}; mod-crop it first")
    # output_shape rather than scale=1/scale: the same weights (k/(k*s) == 1/s in floating point), and no
    # ceil(size/s) rounding surprise for scales like 3.
    return imresize(hr, output_shape=(h // scale, w // scale))


# ---------------------------------------------------------------------------------------------------------- pairs

@dataclass(frozen=True)
class ImagePair:
    """One LR image, with its HR (mod-cropped, exactly ``scale`` x LR) when the dataset has one."""

    name: str
    lr: np.ndarray
    hr: np.ndarray | None


HRSource = Union[Path, Callable[[], np.ndarray], None]


@dataclass(frozen=True)
class PairSource:
    """Where one pair comes from, without reading it.

    ``hr`` is a file, a function returning an RGB uint8 image, or None (LR-only). ``lr`` is a file, or None to make
    the LR from the HR with the kit's bicubic.
    """

    name: str
    hr: HRSource
    lr: Path | None

    def load_hr(self, scale: int) -> np.ndarray:
        """The HR image, mod-cropped to ``scale``; a :class:`DataError` when there is none or it is smaller than
        the scale."""
        if self.hr is None:
            raise DataError(f"{self.name}: no HR image")
        hr = read_image(self.hr) if isinstance(self.hr, Path) else self.hr()
        full = hr.shape[:2]
        hr = np.ascontiguousarray(modcrop(hr, scale))
        if min(hr.shape[:2]) == 0:
            raise DataError(f"{self._where(self.hr)}: HR {full[0]}x{full[1]} is smaller than the scale {scale}")
        return hr

    def load(self, scale: int) -> ImagePair:
        hr = self.load_hr(scale) if self.hr is not None else None
        if self.lr is None:
            if hr is None:
                raise DataError(f"{self.name}: neither an LR nor an HR image")
            return ImagePair(self.name, make_lr(hr, scale), hr)
        lr = read_image(self.lr)
        if hr is not None and hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
            raise DataError(f"{self.lr}: LR {lr.shape[0]}x{lr.shape[1]} does not match HR "
                            f"{self._where(self.hr)} ({hr.shape[0]}x{hr.shape[1]} after mod-crop) at x{scale}")
        return ImagePair(self.name, lr, hr)

    def _where(self, src: HRSource) -> str:
        return str(src) if isinstance(src, Path) else self.name


class ImageDataset:
    """A named, ordered, lazily read set of :class:`ImagePair` at one scale.

    ``len(ds)``, ``ds[i]`` (negative indices too), ``ds["0801"]``, iteration. Each access reads the files again:
    nothing is cached, so a 100-image set never sits in memory. ``layout`` says which layout was recognised;
    ``lr_made`` is True when the LR images are made by the kit's bicubic.
    """

    def __init__(self, name: str, scale: int, sources: Sequence[PairSource], *, layout: str = "",
                 root: Path | None = None):
        if scale < 1:
            raise OptionError(f"scale must be a positive integer, got {scale}")
        if not sources:
            raise DataError(f"{name}: the dataset has no images")
        self.name = name
        self.scale = int(scale)
        self.sources = tuple(sources)
        self.layout = layout
        self.root = root
        self._index = {s.name: i for i, s in enumerate(self.sources)}
        if len(self._index) != len(self.sources):
            raise DataError(f"{name}: duplicate image names")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def has_hr(self) -> bool:
        return all(s.hr is not None for s in self.sources)

    @property
    def lr_made(self) -> bool:
        return any(s.lr is None for s in self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, key: int | str) -> ImagePair:
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"{self.name}: no image named {key!r}")
            key = self._index[key]
        return self.sources[key].load(self.scale)

    def __iter__(self) -> Iterator[ImagePair]:
        for source in self.sources:
            yield source.load(self.scale)

    def __repr__(self) -> str:
        kind = "LR-only" if not any(s.hr is not None for s in self.sources) else (
            "LR made by bicubic" if self.lr_made else "LR/HR pairs")
        layout = f"{self.layout}: " if self.layout else ""
        return f"ImageDataset({self.name!r}, x{self.scale}, {len(self)} images, {layout}{kind})"


# ---------------------------------------------------------------------------------------------------------- discovery

def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by extension, hidden files skipped), in natural name order."""
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _images_or_fail(folder: Path) -> list[Path]:
    files = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def _by_name(files: list[Path], scale: int | None, folder: Path) -> dict[str, Path]:
    """name -> file; for LR files (``scale`` given) a trailing ``x{scale}`` is dropped from the stem."""
    out: dict[str, Path] = {}
    for f in files:
        name = f.stem
        if scale is not None and name.lower().endswith(f"x{scale}") and len(name) > len(f"x{scale}"):
            name = name[: -len(f"x{scale}")]
        if name in out:
            raise DataError(f"{folder}: two images named {name!r} ({out[name].name}, {f.name})")
        out[name] = f
    return out


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names, key=_natural_key)[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _paired_sources(hr_dir: Path | None, lr_dir: Path | None, scale: int) -> list[PairSource]:
    hr = _by_name(_images_or_fail(hr_dir), None, hr_dir) if hr_dir else None
    lr = _by_name(_images_or_fail(lr_dir), scale, lr_dir) if lr_dir else None
    if hr is not None and lr is not None:
        no_lr = [n for n in hr if n not in lr]
        no_hr = [n for n in lr if n not in hr]
        if no_lr:
            raise DataError(f"{lr_dir}: no LR image for HR {_few(no_lr)} (expected names like {no_lr[0]}x{scale}.png)")
        if no_hr:
            raise DataError(f"{hr_dir}: no HR image for LR {_few(no_hr)}")
    names = list(hr if hr is not None else lr)  # type: ignore[arg-type]
    return [PairSource(n, hr[n] if hr is not None else None, lr[n] if lr is not None else None) for n in names]


def _first_dir(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


def _lr_dir(base: Path, scale: int) -> Path | None:
    """``base_LR_bicubic/X4``, ``base_LR_bicubic``, ``base_LR/X4``, ``base_LR`` (X or x), the first that exists."""
    cands = []
    for stem in (f"{base.name}_bicubic", base.name):
        d = base.parent / stem
        cands += [d / f"X{scale}", d / f"x{scale}", d]
    found = _first_dir(*cands)
    # a bare LR_bicubic/ holding only X2/X3 sub-folders is not an LR folder for this scale
    if found is not None and found.name in (f"{base.name}_bicubic", base.name) and not list_images(found):
        sub = [p.name for p in found.iterdir() if p.is_dir()]
        if sub:
            raise DataError(f"{found}: no X{scale} sub-folder (found {', '.join(sorted(sub))})")
    return found


_LR_FOLDER = re.compile(r"^(x\d+|lr|lr[_\-\s].*|.*[_\-\s]lr)$", re.IGNORECASE)


def _open_folder(root: Path, scale: int, split: str) -> ImageDataset:
    for prefix in ("DIV2K_LSDIR", "DIV2K"):
        hr_dir = _first_dir(root / f"{prefix}_{split}_HR")
        lr_dir = _lr_dir(root / f"{prefix}_{split}_LR", scale)
        if hr_dir or lr_dir:
            return ImageDataset(f"{prefix}_{split}", scale, _paired_sources(hr_dir, lr_dir, scale),
                                layout=prefix.replace("_", "+"), root=root)
    other = sorted(p.name for p in root.glob("DIV2K*") if p.is_dir())
    if other:
        raise DataError(f"{root}: no DIV2K folders for split {split!r} (found {', '.join(other)})")

    hr_dir = _first_dir(root / "HR")
    lr_dir = _lr_dir(root / "LR", scale)
    if hr_dir or lr_dir:
        return ImageDataset(root.name, scale, _paired_sources(hr_dir, lr_dir, scale), layout="HR/LR folders",
                            root=root)

    if _LR_FOLDER.match(root.name):
        named = next((p for p in (root, *root.parents) if not _LR_FOLDER.match(p.name)), root)
        name = named.name or root.name
        return ImageDataset(name, scale, _paired_sources(None, root, scale), layout="LR-only folder", root=root)
    files = list_images(root)
    if not files:
        raise DataError(f"{root}: no images and no known layout (DIV2K_{split}_HR/, DIV2K_LSDIR_{split}_HR/, "
                        f"HR/ + LR_bicubic/X{scale}/, or image files)")
    return ImageDataset(root.name, scale, [PairSource(n, f, None) for n, f in _by_name(files, None, root).items()],
                        layout="HR-only folder (LR by bicubic)", root=root)


def sample_dataset(scale: int = 4) -> ImageDataset:
    """The embedded sample set: HR = the bundled photos mod-cropped to ``scale``, LR = MATLAB-exact bicubic of HR."""
    sources = [PairSource(n, functools.partial(writable_photo, n), None) for n in SAMPLE_NAMES]
    return ImageDataset("sample", scale, sources, layout="embedded sample (scikit-image photos)")


def open_image_dataset(spec: str | Path, scale: int = 4, split: str = "valid") -> ImageDataset:
    """Open a dataset: ``"sample"`` (embedded photos) or a folder in one of the layouts of this module's docstring.

    Lists the files (pairing and naming errors show up here); pixels are read when items are accessed.
    """
    if str(spec) == "sample":
        return sample_dataset(scale)
    root = Path(spec).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder (give 'sample' or a dataset folder)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (give 'sample' or a dataset folder)")
    return _open_folder(root, scale, split)
