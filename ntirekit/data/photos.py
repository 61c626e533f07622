"""HR photos to train on or render clips from: scikit-image's bundled photos (offline) or a folder of images.

``"skimage"``: photos bundled with scikit-image that are NOT in the embedded sample set (:mod:`ntirekit.data.sample`,
which therefore stays a clean validation set); grey ones are read as 3 equal channels. A folder: every image in it
(``read_image``: RGB uint8), e.g. ``DIV2K_train_HR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ntirekit.data import DataError
from ntirekit.data.images import list_images, read_image

__all__ = ["SKIMAGE_TRAIN", "load_hr_images"]

#: scikit-image photos used by the "skimage" training spec (disjoint from the embedded sample set)
SKIMAGE_TRAIN: tuple[str, ...] = ("rocket", "hubble_deep_field", "retina", "immunohistochemistry", "brick", "grass", "gravel", "moon",
                                  "coins")


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)


def load_hr_images(spec: str | Path, names: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """``[(name, RGB uint8 HxWx3)]`` from ``"skimage"`` or a folder of images (see the module docstring)."""
    if str(spec) == "skimage":
        return [(n, _skimage_photo(n)) for n in (names or SKIMAGE_TRAIN)]

    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of HR images (or give 'skimage')")
    files = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images")
    return [(f.stem, read_image(f)) for f in files]
