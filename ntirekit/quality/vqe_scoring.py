"""The NTIRE 2022 VQE scoring, as data: what is measured per frame, which frames count, and how they are averaged.

NTIRE 2022 Quality Enhancement of Heavily Compressed Videos (LDV 2.0; challenge report §3.1): the fidelity tracks are
ranked by PSNR computed on the RGB frames (peak 255, no border cropped), averaged over the frames of each video, then
over the videos. The online validation server scored only every 10th frame of each video (frames 10, 20, ... in
the 1-based numbering of ``ffmpeg -i 001.mkv %3d.png``), which is also all a validation upload held; the final test
phase scored every frame.

:data:`NTIRE2022_VQE` (every frame) and :data:`NTIRE2022_VQE_VALIDATION` (every 10th) are :class:`VqeScoring`
values; :func:`scored_frames` says which 0-based frame indices a scoring counts, :func:`score_video` and
:func:`score_videos` aggregate per-frame PSNRs (frames with zero error, PSNR = inf, are skipped as
:func:`ntirekit.quality.aggregate.video_psnr` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ntirekit.quality.aggregate import mean_over_videos, video_psnr

__all__ = ["VqeScoring", "NTIRE2022_VQE", "NTIRE2022_VQE_VALIDATION", "SCORINGS", "scored_frames", "score_video",
           "score_videos"]


@dataclass(frozen=True)
class VqeScoring:
    """One way of scoring enhanced videos against their clean frames."""

    name: str
    #: per-frame PSNR protocol of :func:`ntirekit.quality.psnr` ("challenge": RGB, peak 255)
    psnr_protocol: str = "challenge"
    #: pixels cropped at every side before the PSNR
    border: int = 0
    #: score frames ``frame_step, 2 * frame_step, ...`` (1-based); 1 = every frame
    frame_step: int = 1
    #: per video: mean over its scored frames; overall: mean over videos
    aggregate: str = "mean over frames per video, then mean over videos"


NTIRE2022_VQE = VqeScoring("ntire2022-vqe")
NTIRE2022_VQE_VALIDATION = VqeScoring("ntire2022-vqe-validation", frame_step=10)
SCORINGS = {s.name: s for s in (NTIRE2022_VQE, NTIRE2022_VQE_VALIDATION)}


def scored_frames(n: int, frame_step: int = 1) -> list[int]:
    """0-based indices of the frames a scoring with ``frame_step`` counts in a video of ``n`` frames: every frame,
    or frames ``step, 2·step, ...`` of the 1-based numbering (indices ``step-1, 2·step-1, ...``)."""
    if frame_step < 1:
        raise ValueError(f"frame_step must be at least 1, got {frame_step}")
    if n < frame_step:
        raise ValueError(f"a video of {n} frames has no frame to score every {frame_step}th frame")
    return list(range(frame_step - 1, n, frame_step))


def score_video(frame_psnrs: Sequence[float], scoring: VqeScoring = NTIRE2022_VQE) -> float:
    """A video's PSNR: the mean of its scored frames' PSNRs (``frame_psnrs``: one per frame, in order)."""
    return video_psnr([frame_psnrs[i] for i in scored_frames(len(frame_psnrs), scoring.frame_step)])


def score_videos(videos: Mapping[str, Sequence[float]], scoring: VqeScoring = NTIRE2022_VQE
                 ) -> tuple[dict[str, float], float]:
    """``({video: PSNR}, mean over videos)`` from every video's per-frame PSNRs."""
    per_video = {name: score_video(values, scoring) for name, values in videos.items()}
    return per_video, mean_over_videos(per_video)
