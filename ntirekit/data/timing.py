"""The named LR inputs the timing tracks (``runtime``, ``overall``), ``profile --runtime`` and ``pack`` run on.

``"div2k-like"`` (the timing default): :func:`ntirekit.data.sample.div2k_like_inputs`, six RGB uint8 LR inputs shaped
like DIV2K valid LR x4 images, cut from the bundled photos. Any other name is an image dataset of
:func:`ntirekit.data.images.open_image_dataset` (``"sample"`` is the embedded sample set there, as everywhere) and
gives its LR images. So "sample" means one thing for a task whatever measures it.
"""

from __future__ import annotations

import numpy as np

from ntirekit.data.images import open_image_dataset
from ntirekit.data.sample import div2k_like_inputs

#: the timing inputs when none are named
DIV2K_LIKE = "div2k-like"
#: how many inputs ``"div2k-like"`` has
DIV2K_LIKE_COUNT = 6


def timing_images(data: str | None = DIV2K_LIKE, scale: int = 4, images: int | None = None,
                  crop: int | None = None) -> list[np.ndarray]:
    """The RGB uint8 LR images named ``data`` (see the module docstring) for a x``scale`` model: the first ``images``
    of them (all when None), each centre-cropped to at most ``crop x crop`` pixels (uncropped when None)."""
    if data in (None, "", DIV2K_LIKE):
        out = list(div2k_like_inputs(DIV2K_LIKE_COUNT))
    else:
        out = [pair.lr for pair in open_image_dataset(data, scale=scale)]
    if images:
        out = out[:int(images)]
    if crop:
        out = [_centre_crop(img, int(crop)) for img in out]
    return out


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    top, left = max(0, (img.shape[0] - size) // 2), max(0, (img.shape[1] - size) // 2)
    return np.ascontiguousarray(img[top:top + size, left:left + size])
