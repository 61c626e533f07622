"""The quality metrics on torch tensors, computed on the device where the model output already is.

Images here are ``CxHxW`` tensors (``uint8`` for the challenge's rounded output and the HR image); nothing is copied
to the host. The definitions are those of :mod:`ntirekit.quality.metrics`:

- :func:`output_to_uint8` is the official harness's ``tensor2uint`` on the device: ``clamp(0, data_range)``, times
  ``255.0``, divided by ``data_range`` (two float32 operations, as numpy does them on the float32 array), rounded half
  to even; the same bits as :func:`ntirekit.quality.convert.to_uint8_output`. On the CPU these run as numpy
  passes over the output's memory (single-threaded numpy is several times faster than torch's threaded kernels on a
  loaded machine); on CUDA as torch kernels.
- :func:`squared_error_sum` is the challenge's sum of squared differences in exact integer arithmetic (CUDA: int32
  differences, int64 sum; CPU: OpenCV's uint8 ``absdiff``, squares in uint16, uint64 sum). :func:`psnr_from_sse` turns it into dB: ``mse = sse / n`` as Python's correctly rounded
  ``int / int``. This equals the official float64 figure (``np.mean((a.astype(float64) - b.astype(float64)) ** 2)``)
  bit for bit: every partial sum numpy forms is an integer below ``2**53`` (for fewer than ``2**53 / 255**2 ≈
  1.4e11`` values), so its float64 sum is the exact integer and its one division rounds the exact quotient, as
  Python's does.
- ``paper`` protocol: the BT.601 studio-range Y in float64 (``16 + (65.481 R + 128.553 G + 24.966 B) / 255``), its
  float64 MSE; equal to the numpy figure to rounding (~1e-13 dB; the summation order differs).
- :func:`ssim_planes` is Wang et al.'s SSIM as :func:`ntirekit.quality.metrics.ssim` defines it (Gaussian 11x11,
  sigma 1.5, 'valid' positions, population statistics, mean over channels), in float64 with depthwise convolutions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ntirekit.quality.convert import _check_range, _one_image
from ntirekit.quality.metrics import PROTOCOLS, _WINDOW, _Y_WEIGHTS

__all__ = ["output_to_uint8", "image_to_tensor", "squared_error_sum", "psnr_from_sse", "protocol_planes",
           "psnr_tensor", "ssim_planes", "ssim_tensor"]


def output_to_uint8(y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Model output ``1xCxHxW`` (or ``CxHxW``) in [0, data_range] -> ``CxHxW`` uint8 on the same device."""
    data_range = _check_range(data_range)
    t = _one_image(y, "output_to_uint8")
    if t.device.type == "cpu":              # numpy's single-threaded passes beat torch's on a busy CPU
        q = np.clip(t.float().numpy(), 0.0, data_range)   # a new array: the output is never written
        np.multiply(q, np.float32(255.0), out=q)
        if data_range != 1.0:               # x / 1.0 == x: skipping it changes no bit
            np.divide(q, np.float32(data_range), out=q)
        return torch.from_numpy(np.rint(q, out=q).astype(np.uint8))
    q = t.float().clamp(0, data_range)     # a new tensor: the in-place steps below never touch the output
    return q.mul_(255.0).div_(data_range).round_().to(torch.uint8)


def image_to_tensor(rgb_uint8: "torch.Tensor | object", device: torch.device | str = "cpu",
                    non_blocking: bool = False) -> torch.Tensor:
    """An RGB uint8 ``HxWxC`` numpy image -> ``CxHxW`` uint8 tensor on ``device`` (a view of a channels-last copy)."""
    t = rgb_uint8 if isinstance(rgb_uint8, torch.Tensor) else torch.from_numpy(rgb_uint8)  # type: ignore[arg-type]
    if t.dtype != torch.uint8 or t.ndim != 3:
        raise TypeError(f"image_to_tensor needs an HxWxC uint8 image, got {t.dtype} {tuple(t.shape)}")
    return t.to(device, non_blocking=non_blocking).permute(2, 0, 1)


def _shave(a: torch.Tensor, b: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 3:
        raise ValueError(f"expected CxHxW images, got shape {tuple(a.shape)}")
    border = int(border)
    if border < 0 or 2 * border >= min(a.shape[1:]):
        raise ValueError(f"border {border} leaves nothing of a {a.shape[1]}x{a.shape[2]} image")
    if border:
        a, b = a[:, border:-border, border:-border], b[:, border:-border, border:-border]
    return a, b


def squared_error_sum(sr: torch.Tensor, hr: torch.Tensor, border: int) -> tuple[int, int]:
    """``(Σ (sr - hr)², number of values)`` over the shaved ``CxHxW`` uint8 images, exact (int64)."""
    if sr.dtype != torch.uint8 or hr.dtype != torch.uint8:
        raise TypeError(f"the challenge protocol compares uint8 images, got {sr.dtype} and {hr.dtype}")
    a, b = _shave(sr, hr, border)
    if a.device.type == "cpu":
        # |a - b| in uint8 (cv2.absdiff, exact), squared into int32 (<= 65025), summed per channel in float64 (exact
        # for integer sums below 2^53: images of up to 1.4e11 values); on HxWxC views, so that no channel plane is
        # copied. (cv2.norm(NORM_L2SQR) is not exact: it returns 39015000.00000001 for 600 values of 255.)
        d = cv2.absdiff(_hwc(a), _hwc(b))
        return int(sum(cv2.sumElems(cv2.multiply(d, d, dtype=cv2.CV_32S)))), a.numel()
    d = a.to(torch.int32) - b.to(torch.int32)
    return int(torch.sum(d * d, dtype=torch.int64)), d.numel()


def _hwc(t: torch.Tensor) -> np.ndarray:
    """A ``CxHxW`` uint8 CPU tensor as an ``HxWxC`` array cv2 takes: a view when it is a channels-last image (what
    :func:`image_to_tensor` makes), else the planes merged (a model output)."""
    if t.shape[0] == 1:
        return t[0].numpy()
    view = t.permute(1, 2, 0).numpy()
    if view.strides[2] == 1 and view.strides[1] == t.shape[0]:
        return view
    return cv2.merge(list(t.numpy()))


def psnr_from_sse(sse: int, n: int, peak: float = 255.0) -> float:
    """PSNR in dB of an exact sum of squared errors over ``n`` values; ``inf`` when it is 0."""
    if sse == 0:
        return math.inf
    return 20.0 * math.log10(peak / math.sqrt(sse / n))


def protocol_planes(sr: torch.Tensor, hr: torch.Tensor, protocol: str, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shaved images as compared under ``protocol``, float64: ``3xHxW`` RGB (challenge) or ``1xHxW`` Y (paper)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    a, b = _shave(sr, hr, border)
    if protocol == "paper" and a.shape[0] == 3:
        w = torch.as_tensor(_Y_WEIGHTS, dtype=torch.float64, device=a.device).view(3, 1, 1)
        return [16.0 + (t.to(torch.float64) / 255.0 * w).sum(0, keepdim=True) for t in (a, b)]  # type: ignore[return-value]
    if protocol == "paper":
        a, b = a[:1], b[:1]
    return a.to(torch.float64), b.to(torch.float64)


def psnr_tensor(sr: torch.Tensor, hr: torch.Tensor, *, protocol: str = "challenge", border: int) -> float:
    """PSNR in dB (peak 255) of ``CxHxW`` uint8 tensors: exact integers (challenge) or float64 Y (paper)."""
    if protocol == "challenge":
        return psnr_from_sse(*squared_error_sum(sr, hr, border))
    a, b = protocol_planes(sr, hr, protocol, border)
    err = float(torch.mean((a - b) ** 2))
    return math.inf if err == 0 else 20.0 * math.log10(255.0 / math.sqrt(err))


def ssim_planes(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two float64 ``CxHxW`` images on the [0, 255] scale, mean over channels (already shaved)."""
    n = len(_WINDOW)
    if min(a.shape[1:]) < n:
        raise ValueError(f"SSIM needs at least {n}x{n} pixels after the border, got {a.shape[1]}x{a.shape[2]}")
    c = a.shape[0]
    g = torch.as_tensor(_WINDOW, dtype=torch.float64, device=a.device)
    stats = torch.stack([a, b, a * a, b * b, a * b], dim=1).reshape(1, 5 * c, *a.shape[1:])
    stats = F.conv2d(stats, g.view(1, 1, n, 1).expand(5 * c, 1, n, 1), groups=5 * c)
    stats = F.conv2d(stats, g.view(1, 1, 1, n).expand(5 * c, 1, 1, n), groups=5 * c)
    mu_a, mu_b, aa, bb, ab = stats.view(c, 5, *stats.shape[2:]).unbind(1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * (ab - mu_a * mu_b) + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (aa - mu_a * mu_a + bb - mu_b * mu_b + c2)
    return float((num / den).mean(dim=(1, 2)).mean())


def ssim_tensor(sr: torch.Tensor, hr: torch.Tensor, *, protocol: str = "challenge", border: int) -> float:
    """SSIM of ``CxHxW`` uint8 tensors under ``protocol`` (see :func:`ntirekit.quality.metrics.ssim`)."""
    return ssim_planes(*protocol_planes(sr, hr, protocol, border))
