"""``ntirekit score``: an uploaded results zip (or folder) scored against ground truth, as a validation server does.

:func:`score_results` opens the upload (:func:`ntirekit.score.sources.open_upload`: a zip is vetted and extracted
into a temporary folder that is removed afterwards), opens the reference (:func:`ntirekit.score.sources.open_reference`)
and scores it with :func:`ntirekit.score.scoring.score_upload`, the code the Codabench scoring program runs too. The
outcome holds the report (ACCEPTED or REJECTED, every problem of the upload as one line) and the scores. A bad upload
never raises: it is a REJECTED report. Reference data that cannot be read raise
:class:`~ntirekit.score.reference.ReferenceDataError` (or the data layer's ``DataError``): that is the organizer's
input, not the upload's.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping

from ntirekit.pack.formats import FRAME_NAME
from ntirekit.pack.report import Report
from ntirekit.pack.safezip import Limits
from ntirekit.quality.metrics import ssim
from ntirekit.score.scoring import Measure, Scores, ScoringSettings, leaderboard_scores, psnr_measure, score_upload
from ntirekit.score.sources import open_reference, open_upload

__all__ = ["ScoreOutcome", "score_results"]


def _upload_frame_step(files: Mapping[str, Path], track: str, report: Report) -> int:
    """10 when a VQE upload holds frames 010, 020, ... only (a validation upload, as ``eval --every-10th`` saves
    it), else 1; a note says so."""
    numbers = [int(m.group(2)) for m in (FRAME_NAME.match(p.rpartition("/")[2]) for p in files if "/" in p) if m]
    if track != "vqe" or not numbers or any(n % 10 for n in numbers):
        return 1
    report.warn("every-10th", "the upload holds frames 010, 020, ... only: scored as the NTIRE 2022 validation server "
                              "did (every 10th frame); --every-10th says so explicitly")
    return 10


@dataclass
class ScoreOutcome:
    """The report of an upload and its scores (None when the upload could not be read at all)."""

    report: Report
    scores: Scores | None

    def to_dict(self) -> dict[str, Any]:
        out = self.report.to_dict()
        if self.scores is not None:
            out.update(self.scores.to_dict())
            if self.report.ok:
                out["leaderboard"] = leaderboard_scores(self.scores)
        return out


def score_results(results: str | os.PathLike, ref: str | os.PathLike, *, track: str | None = None, scale: int = 4,
                  protocol: str = "challenge", ssim_too: bool = False, frame_step: int | None = None,
                  split: str | None = None, limits: Limits = Limits(),
                  work_dir: str | os.PathLike | None = None) -> ScoreOutcome:
    """Score the upload ``results`` against ``ref``.

    ``track``: ``esr`` or ``vqe`` (None: :func:`ntirekit.score.sources.detect_track`). ``scale``: the ESR scale,
    which is also the border shaved. ``protocol``: ``challenge`` (RGB) or ``paper`` (Y). ``ssim_too``: also SSIM
    (ESR; :func:`ntirekit.quality.ssim`, same protocol and border). ``frame_step``: VQE frames scored (1 every frame,
    10 every 10th; None: what a reference folder holds, else 10 when the upload holds frames 010, 020, ... only, else
    1). ``split``: which split a DIV2K-style ``ref`` root
    opens (default valid).
    """
    report = Report(source=str(results))
    with tempfile.TemporaryDirectory(prefix="ntirekit-score-", dir=work_dir) as scratch:
        files = open_upload(results, Path(scratch) / "upload", report, limits)
        if not files and not report.ok:
            return ScoreOutcome(report, None)
        reference = open_reference(ref, track or None, scale=scale, split=split, files=files)   # None: detected
        track = reference.track
        step = frame_step or reference.frame_step or _upload_frame_step(files, track, report)
        settings = ScoringSettings(track, protocol, border=scale if track == "esr" else 0, frame_step=step)
        measures: dict[str, Measure] = {"psnr_db": psnr_measure(settings)}
        if ssim_too:
            measures["ssim"] = partial(ssim, protocol=protocol, border=settings.border)
        scores = score_upload(files, reference, settings, report, measures)
    return ScoreOutcome(report, scores)
