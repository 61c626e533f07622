"""Aggregating per-frame and per-video PSNR the way the NTIRE video challenges do.

A video's PSNR is the mean of its frames' PSNRs, frames with zero error (PSNR = inf) skipped; a dataset's PSNR is the
mean of its videos' PSNRs.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

__all__ = ["video_psnr", "mean_over_videos"]


def video_psnr(frame_psnrs: Iterable[float]) -> float:
    """Mean PSNR over a video's frames, skipping frames with zero error (inf); inf if every frame is exact."""
    values = [float(v) for v in frame_psnrs]
    if not values:
        raise ValueError("video_psnr needs at least one frame")
    if any(math.isnan(v) for v in values):
        raise ValueError("video_psnr got a NaN frame PSNR")
    finite = [v for v in values if not math.isinf(v)]
    return math.fsum(finite) / len(finite) if finite else math.inf


def mean_over_videos(video_psnrs: Iterable[float] | Mapping[str, float]) -> float:
    """Mean over videos of their PSNRs (a mapping's values, or a sequence)."""
    values = [float(v) for v in (video_psnrs.values() if isinstance(video_psnrs, Mapping) else video_psnrs)]
    if not values:
        raise ValueError("mean_over_videos needs at least one video")
    return math.fsum(values) / len(values)
