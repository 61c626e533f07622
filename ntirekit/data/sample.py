"""The embedded sample set: real photos that need no download, for ``eval --data sample`` and the runtime track.

The photos are the PNG images bundled inside scikit-image (a dependency of the kit, so always installed, offline):
``astronaut`` (512x512), ``coffee`` (400x600), ``chelsea`` (300x451), ``motorcycle`` (the left view of
``stereo_motorcycle``, 500x741) and ``camera`` (512x512 grayscale, read as 3 equal channels). Only PNG sources are
used so the pixels are identical on every install (no JPEG decoder differences).

:func:`ntirekit.data.images.sample_dataset` gives them as HR (mod-cropped) with LR made by the kit's MATLAB-exact
bicubic (the dataset ``"sample"``); :func:`div2k_like_inputs` cuts LR-sized inputs shaped like DIV2K valid LR images
out of them (the timing inputs ``"div2k-like"`` of :mod:`ntirekit.data.timing`).
"""

from __future__ import annotations

import functools

import numpy as np

from ntirekit.data.bicubic import imresize

__all__ = ["SAMPLE_NAMES", "sample_photo", "div2k_like_inputs"]

#: the sample set's image names, in order (scikit-image's bundled PNG photos)
SAMPLE_NAMES: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "motorcycle", "camera")


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
    img.setflags(write=False)          # shared by every caller through the cache
    return img


def sample_photo(name: str) -> np.ndarray:
    """One bundled photo as RGB uint8 ``HxWx3`` (full size, read-only)."""
    if name not in SAMPLE_NAMES:
        raise KeyError(f"no sample photo {name!r} (known: {', '.join(SAMPLE_NAMES)})")
    return _photo(name)


def writable_photo(name: str) -> np.ndarray:
    """A writable copy of one bundled photo."""
    return sample_photo(name).copy()


#: DIV2K valid LR x4 images are 510 pixels on the long side and mostly 339 on the short one (HR 2040x1356)
_LONG, _SHORT = 510, 339


def _shape(i: int, rng: np.random.Generator) -> tuple[int, int]:
    kind = i % 3
    if kind == 0:
        return _SHORT, _LONG                              # landscape 339x510 (HxW)
    if kind == 1:
        return _LONG, _SHORT                              # portrait 510x339
    short = int(rng.integers(_SHORT - 24, _SHORT + 16))   # a near size, alternating orientation
    return (short, _LONG) if (i // 3) % 2 == 0 else (_LONG, short)


def div2k_like_inputs(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 LR inputs shaped like DIV2K valid LR x4 images, cut from the bundled photos.

    Shapes (HxW) cycle through 339x510, 510x339 and a near size (short side 315-354, alternating orientation).
    Each input is a window of a bundled colour photo at a random offset, resized with the kit's bicubic to the shape;
    the window is the shape shrunk by a random zoom (at least enough to fit the photo, times [1, 1.25)), so the
    content is magnified a little. Deterministic for a given ``seed``.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    colour = [n for n in SAMPLE_NAMES if n != "camera"]
    out = []
    for i in range(count):
        th, tw = _shape(i, rng)
        photo = sample_photo(colour[i % len(colour)])
        h, w = photo.shape[:2]
        zoom = max(th / h, tw / w) * (1.0 + 0.25 * float(rng.random()))
        ch, cw = min(h, round(th / zoom)), min(w, round(tw / zoom))      # the source window, then resized to fit
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        out.append(imresize(photo[top:top + ch, left:left + cw], output_shape=(th, tw)))
    return out
