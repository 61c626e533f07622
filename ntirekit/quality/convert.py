"""Tensor <-> image conversions exactly as the official NTIRE ESR harness does them (``utils/utils_image.py``).

- input: ``torch.from_numpy(rgb).permute(2, 0, 1).float().div(255. / data_range).unsqueeze(0)``;
- output: ``squeeze().float().clamp_(0, data_range)``, to numpy HxWx3, ``np.uint8((img * 255.0 / data_range).round())``
  (float32 arithmetic, numpy's round half to even).

torch is imported when these are called, so ``ntirekit.quality`` stays light for PSNR/SSIM-only users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["to_model_input", "to_uint8_output"]


def _check_range(data_range: float) -> float:
    data_range = float(data_range)
    if data_range not in (1.0, 255.0):
        raise ValueError(f"data_range must be 1.0 or 255.0, got {data_range}")
    return data_range


def _one_image(tensor: "torch.Tensor", caller: str) -> "torch.Tensor":
    """A ``1xCxHxW`` or ``CxHxW`` model output as ``CxHxW`` (detached); anything else is a ValueError."""
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"{caller} takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"{caller} needs a 1xCxHxW or CxHxW tensor, got shape {tuple(t.shape)}")
    return t


def to_model_input(rgb_uint8: np.ndarray, data_range: float, device: Any = "cpu") -> "torch.Tensor":
    """RGB uint8 ``HxWx3`` (or ``HxW``) -> float32 ``1x3xHxW`` (``1x1xHxW``) in [0, data_range] on ``device``."""
    import torch

    img = np.asarray(rgb_uint8)
    if img.dtype != np.uint8:
        raise TypeError(f"to_model_input needs a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"to_model_input needs an HxWxC image, got shape {img.shape}")
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0 / _check_range(data_range))
    return x.unsqueeze(0).to(device)


def to_uint8_output(tensor: "torch.Tensor", data_range: float) -> np.ndarray:
    """Model output ``1x3xHxW`` (or ``3xHxW``) in [0, data_range] -> RGB uint8 ``HxWx3``: clamp, scale, round."""
    data_range = _check_range(data_range)
    img = _one_image(tensor, "to_uint8_output").float().clamp(0, data_range).cpu().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(np.uint8((img * 255.0 / data_range).round()))
