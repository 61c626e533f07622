"""Training data for image SR entries: HR images, LR made by the kit's MATLAB-exact bicubic, random augmented patches.

HR sources (:func:`ntirekit.data.photos.load_hr_images`):

- ``"skimage"``: photos bundled with scikit-image (installed with the kit, offline) that are NOT in the embedded sample
  set (:mod:`ntirekit.data.sample`, which therefore stays a clean validation set): ``rocket``, ``hubble_deep_field``,
  ``retina``, ``immunohistochemistry`` (colour) and ``brick``, ``grass``, ``gravel``, ``moon``, ``coins`` (grey, read as 3 equal
  channels);
- a folder: every image in it (``read_image``: RGB uint8), e.g. ``DIV2K_train_HR``.

:class:`SRPatchSource` mod-crops each HR image, makes its LR once (``make_lr``: ``imresize(hr, 1/scale)``), and samples
batches of aligned patches: an image (probability proportional to its area), a random LR position, then one of the 8
flips/rotations applied to both. Everything random comes from the ``numpy.random.Generator`` passed to
:meth:`SRPatchSource.sample`, so a resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ntirekit.data import DataError
from ntirekit.data.images import make_lr, modcrop
from ntirekit.data.photos import SKIMAGE_TRAIN, load_hr_images

__all__ = ["SKIMAGE_TRAIN", "load_hr_images", "SRPatchSource", "augment"]

def augment(img: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms: horizontal flip if ``k & 1``, then ``k >> 1`` quarter turns."""
    if k & 1:
        img = img[:, ::-1]
    return np.rot90(img, k >> 1, axes=(0, 1))


class SRPatchSource:
    """Random aligned LR/HR patch batches (a batch source for :class:`ntirekit.train.loop.Trainer`).

    ``sample(rng)`` returns ``(lr, hr)``: float32 tensors ``N x 3 x P x P`` and ``N x 3 x sP x sP`` in
    ``[0, data_range]``.
    """

    def __init__(self, images: Sequence[tuple[str, np.ndarray]], scale: int, *, lr_patch: int = 32,
                 batch_size: int = 16, data_range: float = 1.0, augment: bool = True):
        self.scale, self.lr_patch, self.batch_size = int(scale), int(lr_patch), int(batch_size)
        self.data_range, self.augment = float(data_range), bool(augment)
        self.pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        for name, hr in images:
            hr = np.ascontiguousarray(modcrop(hr, self.scale))
            if min(hr.shape[:2]) < self.lr_patch * self.scale:
                continue
            self.pairs.append((name, make_lr(hr, self.scale), hr))
        if not self.pairs:
            raise DataError(f"no training image is at least {self.lr_patch * self.scale} pixels on its short side")
        areas = np.array([lr.shape[0] * lr.shape[1] for _, lr, _ in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()

    def __repr__(self) -> str:
        return (f"SRPatchSource({len(self.pairs)} images, x{self.scale}, LR patch {self.lr_patch}, "
                f"batch {self.batch_size})")

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p, s = self.lr_patch, self.scale
        lrs, hrs = [], []
        for _ in range(self.batch_size):
            _, lr, hr = self.pairs[int(rng.choice(len(self.pairs), p=self.weights))]
            top = int(rng.integers(0, lr.shape[0] - p + 1))
            left = int(rng.integers(0, lr.shape[1] - p + 1))
            lr_patch = lr[top:top + p, left:left + p]
            hr_patch = hr[top * s:(top + p) * s, left * s:(left + p) * s]
            if self.augment:
                k = int(rng.integers(0, 8))
                lr_patch, hr_patch = augment(lr_patch, k), augment(hr_patch, k)
            lrs.append(np.ascontiguousarray(lr_patch))
            hrs.append(np.ascontiguousarray(hr_patch))
        scale = self.data_range / 255.0
        lr_t = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float() * scale
        hr_t = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float() * scale
        return lr_t, hr_t
