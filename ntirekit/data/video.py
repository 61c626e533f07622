"""Video clips: folders of PNG frames and raw YUV 4:2:0 8-bit files, read lazily as RGB ``uint8`` frames.

A :class:`Clip` is a name, a sequence of RGB ``uint8`` frames (``H×W×3``, read from disk only when indexed), an
optional frame rate and optional per-frame QPs (from a ``qp.txt`` beside the frames, as
:mod:`ntirekit.data.compress` writes it).

Colour convention (one convention for reading, writing and compressing)
-----------------------------------------------------------------------
- **Matrix**: BT.601, limited ("TV") range, the matrix ffmpeg uses for untagged ``yuv420p`` <-> ``rgb24``::

      Y  = 16  + 219/255 · ( 0.299    R + 0.587    G + 0.114    B)
      Cb = 128 + 224/255 · (-0.168736 R - 0.331264 G + 0.5      B)
      Cr = 128 + 224/255 · ( 0.5      R - 0.418688 G - 0.081312 B)

  and its exact inverse, computed in float64 and rounded half up, then clipped to 0…255.
- **Chroma siting**: centred (each chroma sample sits at the centre of its 2×2 luma block).
  RGB -> YUV averages each 2×2 block of Cb/Cr (edge pixels replicated for odd sizes);
  YUV -> RGB upsamples chroma bilinearly (weights 3/4, 1/4; edges replicated), i.e. OpenCV's ``INTER_LINEAR`` at ×2.
- **Against ffmpeg**: this equals ``ffmpeg -sws_flags accurate_rnd+full_chroma_int`` to within a mean absolute
  difference of ~0.25 levels. ffmpeg's *default* ``yuv420p -> rgb24`` path (fixed-point, chroma replicated 2×2) is
  ~1 level darker on average (at most ~3 levels away from this convention); frames decoded by other tools with that
  default are therefore not bit-identical to ours.

Raw ``.yuv`` files are planar I420: per frame the ``W×H`` Y plane, then U and V planes of ``ceil(W/2)×ceil(H/2)``
each, 8 bits per sample, no header. Their size and frame rate come from the name (``name_640x360_30.yuv``,
``name_640x360.yuv``, ``name_640x360_29.97.yuv``) or from ``size=``/``fps=``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union, overload

import numpy as np

from ntirekit.data import DataError
from ntirekit.data.images import list_images, read_image, write_image

__all__ = [
    "Clip", "ClipError", "read_clip", "write_png_folder", "write_yuv420", "rgb_to_yuv420", "yuv420_to_rgb",
    "parse_size", "yuv_name_info", "read_qp_file", "write_qp_file", "QP_FILE", "CLIP_JSON",
]

#: Name of the per-frame QP file beside a clip's frames (lines ``frame type qp``, the x265 ``--qpfile`` format).
QP_FILE = "qp.txt"
#: Name of the small metadata file beside a compressed clip's frames.
CLIP_JSON = "clip.json"


class ClipError(DataError, ValueError):
    """A clip that cannot be read or written as asked (bad size, truncated file, no frames, ...)."""


# ----------------------------------------------------------------------------------------------------------------------
# Colour conversion
# ----------------------------------------------------------------------------------------------------------------------

# Rows: Y, Cb, Cr from R, G, B in 0..255 (offsets added separately).
_RGB2YCC = np.array([
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
], dtype=np.float64) * np.array([[219.0 / 255.0], [224.0 / 255.0], [224.0 / 255.0]])
_YCC2RGB = np.linalg.inv(_RGB2YCC)
_YCC_OFFSET = np.array([16.0, 128.0, 128.0])


def _round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def _check_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ClipError(f"expected an RGB uint8 H×W×3 frame, got {frame.dtype} of shape {frame.shape}")
    return frame


def rgb_to_yuv420(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB ``uint8`` ``H×W×3`` -> ``(Y, U, V)`` ``uint8`` planes, ``H×W`` and ``ceil(H/2)×ceil(W/2)``."""
    frame = _check_rgb(frame)
    h, w = frame.shape[:2]
    ycc = frame.astype(np.float64) @ _RGB2YCC.T  # H×W×3, no offsets yet
    y = _round_u8(ycc[..., 0] + _YCC_OFFSET[0])
    # 2×2 box average of the chroma (centred siting); odd sizes replicate the last row/column.
    c = ycc[..., 1:]
    if h % 2 or w % 2:
        c = np.pad(c, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    c = c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2, 2).mean(axis=(1, 3))
    u = _round_u8(c[..., 0] + _YCC_OFFSET[1])
    v = _round_u8(c[..., 1] + _YCC_OFFSET[2])
    return y, u, v


def _upsample2(plane: np.ndarray, axis: int) -> np.ndarray:
    """×2 linear interpolation along ``axis``, centred: out[2i] = ¾c[i] + ¼c[i-1], out[2i+1] = ¾c[i] + ¼c[i+1]."""
    n = plane.shape[axis]
    prev = np.take(plane, np.r_[0, np.arange(n - 1)], axis=axis)
    nxt = np.take(plane, np.r_[np.arange(1, n), n - 1], axis=axis)
    even = 0.75 * plane + 0.25 * prev
    odd = 0.75 * plane + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(Y, U, V)`` ``uint8`` planes (4:2:0) -> RGB ``uint8`` ``H×W×3`` (BT.601 limited range, bilinear chroma)."""
    h, w = y.shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    if u.shape != (ch, cw) or v.shape != (ch, cw):
        raise ClipError(f"chroma planes of {u.shape} and {v.shape} do not fit a {w}x{h} luma plane (want {cw}x{ch})")
    chroma = np.stack([u, v], axis=-1).astype(np.float64) - _YCC_OFFSET[1:]
    chroma = _upsample2(_upsample2(chroma, 0), 1)[:h, :w]
    ycc = np.concatenate([y.astype(np.float64)[..., None] - _YCC_OFFSET[0], chroma], axis=-1)
    return _round_u8(ycc @ _YCC2RGB.T)


# ----------------------------------------------------------------------------------------------------------------------
# Lazy frame sequences
# ----------------------------------------------------------------------------------------------------------------------

class _Frames(Sequence[np.ndarray]):
    """A read-only sequence of RGB frames; indexing reads one frame, slicing gives another lazy sequence."""

    def __init__(self, indices: Sequence[int]) -> None:
        self._indices = list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> "_Frames": ...

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, slice):
            clone = object.__new__(type(self))
            clone.__dict__.update(self.__dict__)
            clone._indices = self._indices[index]
            return clone
        i = range(len(self._indices))[index]  # IndexError and negative indices as for lists
        return self._read(self._indices[i])

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in self._indices:
            yield self._read(i)

    def _read(self, i: int) -> np.ndarray:
        raise NotImplementedError


class PngFrames(_Frames):
    """Frames read from image files (PNG, ...) with :func:`ntirekit.data.images.read_image` (RGB ``uint8``)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__(range(len(paths)))
        self.paths = list(paths)

    def _read(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])


class YuvFrames(_Frames):
    """Frames of a raw planar YUV 4:2:0 8-bit file, read one frame at a time and converted to RGB."""

    def __init__(self, path: Path, width: int, height: int, count: int) -> None:
        super().__init__(range(count))
        self.path, self.width, self.height = path, width, height

    @property
    def frame_bytes(self) -> int:
        return yuv420_frame_bytes(self.width, self.height)

    def read_planes(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The raw ``(Y, U, V)`` planes of frame ``i`` of this sequence."""
        return self._planes(self._indices[range(len(self._indices))[i]])

    def _planes(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        with open(self.path, "rb") as f:
            f.seek(frame * self.frame_bytes)
            buf = f.read(self.frame_bytes)
        if len(buf) != self.frame_bytes:
            raise ClipError(f"{self.path}: frame {frame} is truncated")
        data = np.frombuffer(buf, dtype=np.uint8)
        return (data[: w * h].reshape(h, w), data[w * h: w * h + cw * ch].reshape(ch, cw),
                data[w * h + cw * ch:].reshape(ch, cw))

    def _read(self, i: int) -> np.ndarray:
        return yuv420_to_rgb(*self._planes(i))


class ArrayFrames(_Frames):
    """Frames already in memory (a list of arrays or an ``N×H×W×3`` array)."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self.arrays = [_check_rgb(f) for f in frames]
        super().__init__(range(len(self.arrays)))

    def _read(self, i: int) -> np.ndarray:
        return self.arrays[i]


def yuv420_frame_bytes(width: int, height: int) -> int:
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


# ----------------------------------------------------------------------------------------------------------------------
# Clip
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class Clip:
    """A video clip: ``frames`` is a sequence of RGB ``uint8`` ``H×W×3`` arrays (lazily read for files).

    ``qps`` holds one QP per frame when known (a compressed clip's ``qp.txt``); ``path`` is where it was read from.
    """

    name: str
    frames: Sequence[np.ndarray]
    fps: float | None = None
    qps: list[int] | None = None
    path: Path | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.frames, _Frames):
            self.frames = ArrayFrames(self.frames)
        if self.qps is not None and len(self.qps) != len(self.frames):
            raise ClipError(f"clip {self.name}: {len(self.qps)} QPs for {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames (reads the first frame of a file-backed clip)."""
        if isinstance(self.frames, YuvFrames):
            return self.frames.width, self.frames.height
        if not len(self.frames):
            raise ClipError(f"clip {self.name} has no frames")
        h, w = self.frames[0].shape[:2]
        return w, h

    def head(self, n: int | None) -> "Clip":
        """The first ``n`` frames (all when ``n`` is None), still lazy."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ClipError(f"frame count must be at least 1, got {n}")
        return Clip(self.name, self.frames[:n], self.fps, None if self.qps is None else self.qps[:n], self.path,
                    dict(self.meta))


_SIZE_RE = re.compile(r"^\s*(\d+)\s*[x×X]\s*(\d+)\s*$")
_YUV_NAME_RE = re.compile(r"_(\d+)x(\d+)(?:_(\d+(?:\.\d+)?)(?:fps)?)?$", re.IGNORECASE)


def parse_size(size: str | Sequence[int]) -> tuple[int, int]:
    """``"640x360"`` or ``(640, 360)`` -> ``(width, height)``."""
    if isinstance(size, str):
        m = _SIZE_RE.match(size)
        if not m:
            raise ClipError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 640x360)")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        w, h = (int(s) for s in size)
    if w < 1 or h < 1:
        raise ClipError(f"size {w}x{h} must be positive")
    return w, h


def yuv_name_info(path: str | os.PathLike) -> tuple[str, tuple[int, int] | None, float | None]:
    """``name_640x360_30.yuv`` -> ``("name", (640, 360), 30.0)``; parts not in the name come back as None."""
    stem = Path(path).stem
    m = _YUV_NAME_RE.search(stem)
    if not m:
        return stem, None, None
    fps = float(m.group(3)) if m.group(3) else None
    return stem[: m.start()] or stem, (int(m.group(1)), int(m.group(2))), fps


def read_qp_file(path: str | os.PathLike) -> list[int]:
    """Per-frame QPs from lines ``frame type qp`` (x265 ``--qpfile``), ``frame qp`` or just ``qp``; ``#`` comments."""
    path = Path(path)
    entries: dict[int, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            if len(fields) == 1:
                frame, qp = len(entries), int(fields[0])
            elif len(fields) == 2:
                frame, qp = int(fields[0]), int(fields[1])
            elif len(fields) == 3:
                frame, qp = int(fields[0]), int(fields[2])
            else:
                raise ValueError
        except ValueError:
            raise ClipError(f"{path}:{lineno}: expected 'frame type qp', 'frame qp' or 'qp', "
                            f"got {line.strip()!r}") from None
        if frame in entries:
            raise ClipError(f"{path}:{lineno}: frame {frame} listed twice")
        entries[frame] = qp
    if sorted(entries) != list(range(len(entries))):
        raise ClipError(f"{path}: frames must be numbered 0..{len(entries) - 1} without gaps")
    return [entries[i] for i in range(len(entries))]


def write_qp_file(path: str | os.PathLike, qps: Sequence[int], types: Sequence[str] | None = None) -> Path:
    """Write ``frame type qp`` lines (the x265 ``--qpfile`` format); types default to ``I`` then ``P``."""
    path = Path(path)
    types = types or ["I" if i == 0 else "P" for i in range(len(qps))]
    path.write_text("".join(f"{i} {t} {int(q)}\n" for i, (t, q) in enumerate(zip(types, qps))))
    return path


def read_clip(path: str | os.PathLike, *, size: str | Sequence[int] | None = None, fps: float | None = None,
              pix_fmt: str = "yuv420p") -> Clip:
    """Read a clip lazily: a folder of PNG frames (natural name order: 2 before 10) or a raw ``.yuv`` file.

    Folder frames are read with :func:`ntirekit.data.images.read_image` (any image type it knows; 16-bit scaled).

    For a ``.yuv`` file the size (``size="640x360"``) and frame rate come from the arguments or else from the name
    (``name_640x360_30.yuv``). A folder's ``qp.txt`` gives per-frame QPs and its ``clip.json`` the frame rate.
    """
    path = Path(path)
    if not path.exists():
        raise ClipError(f"clip {path} does not exist")
    if path.is_dir():
        return _read_png_folder(path, fps)
    if path.suffix.lower() == ".yuv":
        return _read_yuv(path, size, fps, pix_fmt)
    raise ClipError(f"{path}: a clip is a folder of PNG frames or a raw .yuv file")


def _read_png_folder(path: Path, fps: float | None) -> Clip:
    files = list_images(path)
    if not files:
        raise ClipError(f"{path}: no image frames (PNG) in the folder")
    meta: dict = {}
    meta_file = path / CLIP_JSON
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise ClipError(f"{meta_file}: not valid JSON ({exc})") from None
    qps = read_qp_file(path / QP_FILE) if (path / QP_FILE).is_file() else None
    if qps is not None and len(qps) != len(files):
        raise ClipError(f"{path / QP_FILE}: {len(qps)} QPs for {len(files)} frames")
    return Clip(path.name, PngFrames(files), fps if fps is not None else meta.get("fps"), qps, path, meta)


def _read_yuv(path: Path, size: str | Sequence[int] | None, fps: float | None, pix_fmt: str) -> Clip:
    if pix_fmt.lower() not in ("yuv420p", "i420"):
        raise ClipError(f"{path}: only 8-bit yuv420p (I420) raw files are supported, not {pix_fmt!r}")
    name, name_size, name_fps = yuv_name_info(path)
    if size is None and name_size is None:
        raise ClipError(f"{path}: frame size unknown: name the file like name_640x360_30.yuv or give the size (WxH)")
    w, h = parse_size(size) if size is not None else name_size  # type: ignore[misc]
    frame_bytes = yuv420_frame_bytes(w, h)
    total = path.stat().st_size
    if total == 0:
        raise ClipError(f"{path}: empty file")
    if total % frame_bytes:
        raise ClipError(f"{path}: {total} bytes is not a whole number of {w}x{h} yuv420p frames "
                        f"({frame_bytes} bytes each; {total / frame_bytes:.2f} frames): wrong size?")
    qps = None
    qp_file = path.with_suffix(".qp.txt")
    if qp_file.is_file():
        qps = read_qp_file(qp_file)
    return Clip(name, YuvFrames(path, w, h, total // frame_bytes), fps if fps is not None else name_fps, qps, path)


# ----------------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------------

FramesLike = Union[Clip, Iterable[np.ndarray]]


def _frames_of(clip: FramesLike) -> Iterable[np.ndarray]:
    return clip.frames if isinstance(clip, Clip) else clip


def write_png_folder(clip: FramesLike, folder: str | os.PathLike, *, start: int = 0, digits: int = 8) -> list[Path]:
    """Write RGB frames as ``00000000.png``, ``00000001.png``, ... into ``folder`` (created); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, frame in enumerate(_frames_of(clip), start):
        paths.append(write_image(folder / f"{i:0{digits}d}.png", _check_rgb(frame)))
    return paths


def write_yuv420(clip: FramesLike, path: str | os.PathLike) -> tuple[Path, int]:
    """Write RGB frames as a raw planar YUV 4:2:0 8-bit file; returns ``(path, frame_count)``. Sizes must agree."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count, shape = 0, None
    with open(path, "wb") as f:
        for frame in _frames_of(clip):
            frame = _check_rgb(frame)
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise ClipError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, "
                                f"frame 0 is {shape[1]}x{shape[0]}: a YUV file needs one size")
            for plane in rgb_to_yuv420(frame):
                f.write(np.ascontiguousarray(plane).tobytes())
            count += 1
    if count == 0:
        raise ClipError(f"no frames to write to {path}")
    return path, count
