"""Clean training clips rendered from still photos with camera motion (``ntirekit data synth-clips``).

A clip is a virtual camera moving over one photo: frame ``t`` shows the photo through the affine map (output pixel
``(u, v)`` -> photo position) ``p = c_t + s_t R(theta_t) ((u, v) - o)``, ``o`` the frame's centre, with

- a pan ``c_t = c_0 + t * velocity`` (pixels per frame, sub-pixel: any real velocity),
- a slow zoom ``s_t = (1 + zoom) ** t`` (``zoom`` per frame; ``s > 1`` shows more of the photo),
- a slow rotation ``theta_t = t * rotation`` (degrees per frame),

and, optionally, a foreground: an elliptical crop of the same photo (soft 2-pixel edge) moving over the frame with
its own velocity. Pixels are sampled with Lanczos-4 interpolation (``cv2.warpAffine``, ``WARP_INVERSE_MAP``), the
photo reflected at its borders. Every motion parameter is drawn from ``numpy.random.default_rng([seed, index])``, so
clip ``index`` of a seed is the same whatever else is made; the parameters and per-frame maps are written to
``motion.json`` beside the frames.

Consequence of the convention: with a pure pan, the content moves by ``-velocity`` from one frame to the next
(frame ``t+1`` at ``u`` shows what frame ``t`` showed at ``u + velocity``).

Photos: ``"kit"`` (scikit-image's bundled photos: the embedded sample set of :mod:`ntirekit.data.sample` and the
image-training set of :mod:`ntirekit.train.data`, no download) or a folder of images.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
import cv2
import numpy as np

from ntirekit.data import DataError
from ntirekit.data.sample import SAMPLE_NAMES, sample_photo
from ntirekit.data.video import write_png_folder
from ntirekit.data.photos import SKIMAGE_TRAIN, load_hr_images

__all__ = ["MotionRange", "ClipMotion", "load_photos", "draw_motion", "render_clip", "synth_clips", "MOTION_JSON"]

MOTION_JSON = "motion.json"


@dataclass(frozen=True)
class MotionRange:
    """Ranges the motion of each clip is drawn from (uniformly; signs random)."""

    min_pan: float = 0.25           # pixels per frame
    max_pan: float = 3.0
    max_zoom: float = 0.004         # relative scale change per frame
    max_rotation: float = 0.15      # degrees per frame
    foreground: float = 0.5         # probability that a clip has a moving foreground
    max_foreground_pan: float = 4.0  # pixels per frame, relative to the frame


@dataclass(frozen=True)
class ClipMotion:
    """The motion of one clip (module docstring); ``foreground_*`` are None without a foreground."""

    photo: str
    start: tuple[float, float]             # c_0, photo pixels (x, y)
    velocity: tuple[float, float]          # pixels per frame (x, y)
    zoom: float
    rotation: float
    foreground_box: tuple[int, int, int, int] | None = None    # x, y, w, h of the crop in the photo
    foreground_start: tuple[float, float] | None = None        # top-left in the frame (x, y)
    foreground_velocity: tuple[float, float] | None = None     # pixels per frame (x, y)

    def matrix(self, t: int, size: tuple[int, int]) -> np.ndarray:
        """The 2x3 map from frame ``t``'s pixels to photo positions (``size`` = (width, height))."""
        w, h = size
        s = (1.0 + self.zoom) ** t
        theta = math.radians(self.rotation * t)
        a = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        c = np.array(self.start) + t * np.array(self.velocity)
        return np.hstack([a, (c - a @ centre)[:, None]])


def _kit_photos() -> list[tuple[str, np.ndarray]]:
    return [(n, np.asarray(sample_photo(n))) for n in SAMPLE_NAMES] + load_hr_images("skimage", SKIMAGE_TRAIN)


def load_photos(spec: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """``[(name, RGB uint8 HxWx3)]``: ``"kit"`` or a folder of images (module docstring)."""
    if str(spec) == "kit":
        return _kit_photos()
    return load_hr_images(spec)


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high) * rng.choice([-1.0, 1.0]))


def draw_motion(rng: np.random.Generator, name: str, photo_size: tuple[int, int], size: tuple[int, int],
                frames: int, ranges: MotionRange = MotionRange()) -> ClipMotion:
    """One clip's motion: the camera's path stays inside the photo where the photo is large enough."""
    pw, ph = photo_size
    w, h = size
    speed = rng.uniform(ranges.min_pan, ranges.max_pan)
    angle = rng.uniform(0, 2 * math.pi)
    velocity = (speed * math.cos(angle), speed * math.sin(angle))
    zoom = _signed(rng, 0.0, ranges.max_zoom)
    rotation = _signed(rng, 0.0, ranges.max_rotation)
    travel = np.abs(np.array(velocity)) * (frames - 1)
    # half-extent of the view, grown by the zoom and rotation over the clip
    grow = max(1.0, (1.0 + zoom) ** (frames - 1)) * (1.0 + abs(math.radians(rotation * (frames - 1))))
    half = np.array([w, h]) / 2.0 * grow
    start = []
    for axis, (extent, v) in enumerate(zip((pw, ph), velocity)):
        low, high = half[axis], extent - half[axis] - travel[axis]
        pos = rng.uniform(low, high) if high > low else extent / 2.0 - travel[axis] / 2.0
        start.append(float(pos + (0.0 if v >= 0 else travel[axis])))
    fg_box = fg_start = fg_velocity = None
    if rng.random() < ranges.foreground:
        fw, fh = int(rng.uniform(0.25, 0.45) * w), int(rng.uniform(0.25, 0.45) * h)
        fg_box = (int(rng.integers(0, max(1, pw - fw))), int(rng.integers(0, max(1, ph - fh))), fw, fh)
        fg_start = (float(rng.uniform(0, w - fw)), float(rng.uniform(0, h - fh)))
        fg_velocity = (_signed(rng, 0.5, ranges.max_foreground_pan), _signed(rng, 0.0, ranges.max_foreground_pan / 2))
    return ClipMotion(name, (start[0], start[1]), velocity, zoom, rotation, fg_box, fg_start, fg_velocity)


def _ellipse_mask(w: int, h: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xs - (w - 1) / 2) / (w / 2)) ** 2 + ((ys - (h - 1) / 2) / (h / 2)) ** 2)
    edge = 2.0 / (min(w, h) / 2)                       # 2 pixels of soft edge
    return np.clip((1.0 - r) / edge, 0.0, 1.0)


def render_clip(photo: np.ndarray, motion: ClipMotion, size: tuple[int, int], frames: int) -> list[np.ndarray]:
    """The clean frames (RGB uint8 HxWx3) of one clip."""
    w, h = size
    src = photo.astype(np.float32)
    fg = mask = None
    if motion.foreground_box is not None:
        x, y, fw, fh = motion.foreground_box
        fg = src[y:y + fh, x:x + fw]
        mask = _ellipse_mask(fg.shape[1], fg.shape[0])
    out = []
    flags = cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP
    for t in range(frames):
        frame = cv2.warpAffine(src, motion.matrix(t, size), (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        if fg is not None and mask is not None:
            ox = motion.foreground_start[0] + t * motion.foreground_velocity[0]  # type: ignore[index]
            oy = motion.foreground_start[1] + t * motion.foreground_velocity[1]  # type: ignore[index]
            m = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy]])   # frame pixel -> foreground crop pixel
            layer = cv2.warpAffine(fg, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
            alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT)[..., None]
            frame = alpha * layer + (1.0 - alpha) * frame
        out.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
    return out


def synth_clips(out_dir: str | os.PathLike, *, photos: str | os.PathLike = "kit", clips: int = 24, frames: int = 20,
                size: tuple[int, int] = (256, 192), seed: int = 0, ranges: MotionRange = MotionRange()
                ) -> list[Path]:
    """Render ``clips`` clips (clip ``i`` from photo ``i mod len(photos)``) as PNG folders ``OUT/synth_<seed>_<i>``
    with ``motion.json``; returns the folders."""
    if clips < 1 or frames < 2:
        raise DataError(f"need at least 1 clip of at least 2 frames (got {clips} clips of {frames} frames)")
    sources = load_photos(photos)
    w, h = size
    small = [n for n, p in sources if p.shape[0] < h or p.shape[1] < w]
    if small:
        raise DataError(f"photos smaller than the {w}x{h} frames: {', '.join(small[:5])}")
    made = []
    for i in range(clips):
        name, photo = sources[i % len(sources)]
        rng = np.random.default_rng([seed, i])
        motion = draw_motion(rng, name, (photo.shape[1], photo.shape[0]), size, frames, ranges)
        folder = Path(out_dir) / f"synth_{seed}_{i:03d}"
        write_png_folder(render_clip(photo, motion, size, frames), folder)
        record = {"seed": seed, "index": i, "size": [w, h], "frames": frames, "ranges": asdict(ranges),
                  "motion": asdict(motion), "matrices": [motion.matrix(t, size).tolist() for t in range(frames)]}
        (folder / MOTION_JSON).write_text(json.dumps(record, indent=1) + "\n")
        made.append(folder)
    return made

