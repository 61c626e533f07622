"""PSNR and SSIM under the two protocols the kit reports.

- ``challenge`` (official NTIRE ESR harness): RGB, all 3 channels of the uint8 images, ``border`` pixels shaved on
  every side, float64 MSE over HxWx3, ``20*log10(255/sqrt(mse))``.
- ``paper`` (SR papers, MATLAB convention): the BT.601 studio-range luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``
  (RGB in [0, 1]) kept as float, ``border`` shaved, float64 MSE, peak 255.

SSIM is Wang et al.'s: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, on the [0, 255] scale, population
(co)variances, mean over the 'valid' positions (the window fully inside the shaved image); for RGB the mean of the
three per-channel SSIMs (as BasicSR and the NTIRE utils compute it).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["PROTOCOLS", "rgb_to_y", "psnr", "ssim", "mse"]

PROTOCOLS = ("challenge", "paper")

#: BT.601 studio-range luma coefficients for RGB in [0, 1] (MATLAB ``rgb2ycbcr``)
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y of an RGB ``HxWx3`` image, float64 on the [0, 255] scale (black 16, white 235).

    Integer input is read as 0..255; float input as 0..1 (MATLAB's convention for double images). Not rounded.
    """
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an HxWx3 RGB image, got shape {a.shape}")
    rgb = a.astype(np.float64) / 255.0 if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)
    return 16.0 + rgb @ _Y_WEIGHTS


def _prepare(sr: np.ndarray, hr: np.ndarray, protocol: str, border: int) -> tuple[np.ndarray, np.ndarray]:
    """The two images as compared under ``protocol``: float64, shaved; ``HxWx3`` (challenge) or ``HxW`` (paper)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    a, b = np.asarray(sr), np.asarray(hr)
    if a.shape != b.shape:
        raise ValueError(f"SR and HR shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC images, got shape {a.shape}")
    border = int(border)
    if border < 0 or 2 * border >= min(a.shape[:2]):
        raise ValueError(f"border {border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
    if protocol == "challenge":
        if a.dtype != np.uint8 or b.dtype != np.uint8:
            raise TypeError(f"the challenge protocol compares uint8 images, got {a.dtype} and {b.dtype}")
        a, b = a.astype(np.float64), b.astype(np.float64)
    elif a.ndim == 3 and a.shape[2] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:                                   # already one channel (grayscale): it is the luma
        a, b = a.astype(np.float64), b.astype(np.float64)
        if a.ndim == 3:
            a, b = a[:, :, 0], b[:, :, 0]
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return a, b


def mse(sr: np.ndarray, hr: np.ndarray, *, protocol: str = "challenge", border: int) -> float:
    """Mean squared error (float64) between the images as compared under ``protocol``."""
    a, b = _prepare(sr, hr, protocol, border)
    return float(np.mean((a - b) ** 2))


def psnr(sr: np.ndarray, hr: np.ndarray, *, protocol: str = "challenge", border: int) -> float:
    """PSNR in dB, peak 255, ``border`` pixels shaved on every side; ``inf`` when the images are equal."""
    err = mse(sr, hr, protocol=protocol, border=border)
    return math.inf if err == 0 else 20.0 * math.log10(255.0 / math.sqrt(err))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


_WINDOW = _gaussian_window()
_HALF = len(_WINDOW) // 2


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter, kept only where the 11x11 window lies inside the image."""
    out = cv2.sepFilter2D(img, cv2.CV_64F, _WINDOW, _WINDOW, borderType=cv2.BORDER_REFLECT)
    return out[_HALF:-_HALF, _HALF:-_HALF]


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a * mu_a
    var_b = _filter_valid(b * b) - mu_b * mu_b
    cov = _filter_valid(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(sr: np.ndarray, hr: np.ndarray, *, protocol: str = "challenge", border: int) -> float:
    """SSIM (Wang et al., Gaussian 11x11, sigma 1.5, [0, 255]) after shaving ``border``; RGB: mean over channels."""
    a, b = _prepare(sr, hr, protocol, border)
    if min(a.shape[:2]) < len(_WINDOW):
        raise ValueError(f"SSIM needs at least {len(_WINDOW)}x{len(_WINDOW)} pixels after the border, "
                         f"got {a.shape[0]}x{a.shape[1]}")
    if a.ndim == 2:
        return _ssim_channel(np.ascontiguousarray(a), np.ascontiguousarray(b))
    return float(np.mean([_ssim_channel(np.ascontiguousarray(a[:, :, c]), np.ascontiguousarray(b[:, :, c]))
                          for c in range(a.shape[2])]))
