"""Scoring an upload against its reference, exactly as ``ntirekit eval`` scores the same outputs.

- **ESR** (``esr-results``): per image, the SR PNG against the HR image with :func:`ntirekit.quality.psnr`:
  ``challenge`` = RGB, ``border = scale`` pixels shaved, float64 MSE, peak 255 (the official harness, the kit's
  default); ``paper`` = BT.601 studio-range Y kept as float, same border. The upload's figure is the mean over images.
- **VQE** (``vqe-results``): per scored frame the RGB PSNR (no border), per video the mean over its scored frames with
  zero-error frames skipped (:func:`ntirekit.quality.video_psnr`), the upload's figure the mean over videos
  (:func:`ntirekit.quality.mean_over_videos`); every frame, or frames 010, 020, ... as the NTIRE 2022 validation
  server took them (:mod:`ntirekit.quality.vqe_scoring`).

Every image is read with the bounded reader of :mod:`ntirekit.score.png` after its reference image, so its header is
checked against the reference's size before any of its pixels is decoded; one image is in memory at a time. A problem
with one file is one line in the :class:`~ntirekit.pack.report.Report` and never stops the others; the upload's mean
is given only when there is no problem at all. An image (a video) identical to its reference, an infinite PSNR, is a
problem too (``exact-copy``: the hidden ground truth uploaded), which keeps ``scores.json`` finite. ``readme.txt`` is
read (at most :data:`README_MAX_BYTES`) and parsed as ``ntirekit pack`` writes it
(:func:`ntirekit.pack.formats.parse_readme`).

:func:`leaderboard_columns` and :func:`leaderboard_scores` are the leaderboard of a validation phase: the Codabench
scoring program writes the scores as ``scores.json``, and ``competition.yaml`` lists the columns; both come from here.
This module and those it uses need numpy and Pillow only: ``ntirekit codabench scoring-program`` writes them into
the scoring program (:mod:`ntirekit.score.codabench.program`).
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ntirekit.pack.formats import README, parse_readme, readme_fields
from ntirekit.pack.report import Report
from ntirekit.quality.aggregate import mean_over_videos, video_psnr
from ntirekit.quality.metrics import PROTOCOLS, psnr
from ntirekit.quality.vqe_scoring import scored_frames
from ntirekit.score.layout import match_frames, match_images, wrapping_folder
from ntirekit.score.png import PngError, read_png
from ntirekit.score.reference import Reference, ReferenceDataError

__all__ = ["README_MAX_BYTES", "Measure", "ScoringSettings", "Scores", "LeaderboardColumn", "psnr_measure",
           "score_upload", "leaderboard_columns", "leaderboard_scores", "render_scores", "detailed_html"]

#: the most bytes of ``readme.txt`` read (its four fields take a few hundred)
README_MAX_BYTES = 64 * 1024
#: ``measure(sr, hr) -> float`` on two RGB uint8 ``HxWx3`` images of one size
Measure = Callable[[np.ndarray, np.ndarray], float]
_FORMATS = {"esr": "esr-results", "vqe": "vqe-results"}


@dataclass(frozen=True)
class ScoringSettings:
    """How an upload is scored. ``border``: pixels shaved on every side (ESR: the scale; VQE: 0). ``frame_step``:
    VQE frames ``step, 2·step, ...`` are scored (1: every frame; 10: the NTIRE 2022 validation server)."""

    track: str
    protocol: str = "challenge"
    border: int = 4
    frame_step: int = 1

    def __post_init__(self) -> None:
        if self.track not in _FORMATS:
            raise ValueError(f"track must be one of {', '.join(_FORMATS)}, got {self.track!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not isinstance(self.border, int) or self.border < 0:
            raise ValueError(f"border must be an integer >= 0, got {self.border!r}")
        if not isinstance(self.frame_step, int) or self.frame_step < 1:
            raise ValueError(f"frame_step must be an integer >= 1, got {self.frame_step!r}")

    @property
    def results_format(self) -> str:
        """The submission format of the upload: ``esr-results`` or ``vqe-results``."""
        return _FORMATS[self.track]

    def describe(self) -> str:
        """One line: what is compared and how."""
        what = "RGB PSNR" if self.protocol == "challenge" else "Y-PSNR (BT.601)"
        if self.track == "esr":
            return f"{what}, {self.border}-pixel border, mean over images"
        frames = "every frame" if self.frame_step == 1 else f"every {self.frame_step}th frame"
        return f"{what} of {frames}, no border, mean per video then over videos"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoringSettings":
        unknown = set(data) - {"track", "protocol", "border", "frame_step"}
        if unknown:
            raise ValueError(f"unknown scoring settings: {', '.join(sorted(unknown))}")
        return cls(**data)


def psnr_measure(settings: ScoringSettings) -> Measure:
    """The PSNR of ``settings`` (protocol and border) as a :data:`Measure`."""
    return partial(psnr, protocol=settings.protocol, border=settings.border)


@dataclass
class Scores:
    """What the scoring found: one row per image (``{name, psnr_db, ...}``) or per video (``{name, frames, psnr_db}``),
    the upload's mean (None unless every item was scored), and the readme's fields."""

    settings: ScoringSettings
    reference: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    readme: dict[str, Any] = field(default_factory=dict)

    @property
    def psnr_db(self) -> float | None:
        return self.means.get("psnr_db")

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "reference": self.reference, "rows": self.rows,
                "psnr_db": self.psnr_db, "means": self.means, "readme": self.readme}


def _read_readme(files: Mapping[str, Path], fmt: str, report: Report) -> dict[str, Any]:
    if README not in files:
        near = [p for p in files if p.casefold() == README or p.rpartition("/")[2].casefold() == README]
        hint = f" (found {near[0]}: it must be named {README}, at the root)" if near else ""
        report.error("missing-readme", f"no {README} with the four NTIRE fields{hint}")
        return {}
    with open(files[README], "rb") as f:
        text = f.read(README_MAX_BYTES).decode("utf-8", errors="replace")
    values, problems = parse_readme(text, fmt)
    for code, message in problems:
        report.error(code, message, README)
    return values


def _score_images(files: Mapping[str, Path], reference: Reference, measures: Mapping[str, Measure],
                  report: Report) -> list[dict[str, Any]]:
    matched = match_images(files, [i.name for i in reference.images], report)
    rows = []
    for ref in reference.images:
        if ref.name not in matched:
            continue
        hr = ref.load()
        try:
            sr = read_png(matched[ref.name], hr.shape[:2])
        except PngError as exc:
            report.error(exc.code, str(exc), f"{ref.name}.png")
            continue
        rows.append({"name": ref.name, **{key: float(m(sr, hr)) for key, m in measures.items()}})
        del sr, hr
    return rows


def _score_videos(files: Mapping[str, Path], reference: Reference, settings: ScoringSettings,
                  measures: Mapping[str, Measure], report: Report) -> list[dict[str, Any]]:
    step = settings.frame_step
    if reference.frame_step is not None and reference.frame_step != step:
        raise ReferenceDataError(f"the reference holds every {reference.frame_step}th frame only; it cannot be "
                                 f"scored with frame step {step}")
    matched = match_frames(files, {v.name: v.frames for v in reference.videos}, step, report)
    rows = []
    for video in reference.videos:
        numbers = [i + 1 for i in scored_frames(video.frames, step)]
        values: dict[str, list[float]] = {key: [] for key in measures}
        for number in numbers:
            path = matched.get((video.name, number))
            if path is None:
                continue
            clean = video.load(number)
            try:
                out = read_png(path, clean.shape[:2])
            except PngError as exc:
                report.error(exc.code, str(exc), f"{video.name}/{path.name}")
                continue
            for key, m in measures.items():
                values[key].append(float(m(out, clean)))
        if all(len(v) == len(numbers) for v in values.values()):
            means = {key: video_psnr(v) if key == "psnr_db" else float(np.mean(v)) for key, v in values.items()}
            rows.append({"name": video.name, "frames": len(numbers), **means})
    return rows


def score_upload(files: Mapping[str, Path], reference: Reference, settings: ScoringSettings, report: Report,
                 measures: Mapping[str, Measure] | None = None) -> Scores:
    """Score the upload ``files`` (``{path in the upload: file}``, from :func:`ntirekit.score.layout.list_files`
    or a vetted zip) against ``reference``; problems go into ``report`` (module docstring).

    ``measures``: ``{key: measure}`` per image or frame (default: ``{"psnr_db": psnr_measure(settings)}``).
    """
    if reference.track != settings.track:
        raise ReferenceDataError(f"a {reference.track} reference cannot score a {settings.track} upload")
    measures = dict(measures) if measures is not None else {"psnr_db": psnr_measure(settings)}
    scores = Scores(settings, reference.source)
    report.format = settings.results_format
    wrapper = wrapping_folder(sorted(files), [v.name for v in reference.videos])
    if wrapper is not None:
        what = "the SR images and readme.txt" if settings.track == "esr" else "the video folders and readme.txt"
        report.error("nested-folder", f"everything lies in this folder: upload {what} themselves, not a folder "
                                      "around them", wrapper + "/")
        return scores
    if settings.track == "esr":
        scores.rows = _score_images(files, reference, measures, report)
    else:
        scores.rows = _score_videos(files, reference, settings, measures, report)
    for row in scores.rows:
        if math.isinf(row["psnr_db"]):
            where = f"{row['name']}.png" if settings.track == "esr" else f"{row['name']}/"
            report.error("exact-copy", "identical to the reference (an infinite PSNR): the ground truth is not "
                                       "an entry", where)
    scores.readme = _read_readme(files, settings.results_format, report)
    report.info["readme"] = scores.readme
    if report.ok and scores.rows:
        for key in measures:
            values = [row[key] for row in scores.rows]
            # as eval's records take them: the mean over videos (vqe), the plain mean over images (psnr track)
            scores.means[key] = (mean_over_videos(values) if settings.track == "vqe" and key == "psnr_db"
                                 else sum(values) / len(values))
    return scores


# ---------------------------------------------------------------------------------------------------------- outputs

@dataclass(frozen=True)
class LeaderboardColumn:
    """One leaderboard column: the ``scores.json`` key, its title, ``asc`` (lower is better) or ``desc``, decimals,
    and what it says (for the pages)."""

    key: str
    title: str
    sorting: str
    precision: int
    meaning: str


def leaderboard_columns(settings: ScoringSettings) -> list[LeaderboardColumn]:
    """The columns of a validation leaderboard, first the one it ranks by: the PSNR, then the readme's runtime,
    CPU/GPU and extra data (self-reported, as NTIRE validation leaderboards show them)."""
    unit = "image" if settings.track == "esr" else "frame"
    what = "PSNR [dB]" if settings.protocol == "challenge" else "Y-PSNR [dB]"
    return [LeaderboardColumn("psnr", what, "desc", 3, f"{settings.describe()}; ranks the leaderboard"),
            LeaderboardColumn("runtime", f"Runtime per {unit} [s]", "asc", 3, "as readme.txt declares it"),
            LeaderboardColumn("cpu", "CPU[1] / GPU[0]", "asc", 0, "as readme.txt declares it: 1 CPU, 0 GPU"),
            LeaderboardColumn("extra_data", "Extra data", "asc", 0, "as readme.txt declares it: 1 extra training "
                                                                  "data, 0 none")]


def leaderboard_scores(scores: Scores) -> dict[str, float]:
    """``scores.json``: one number per :func:`leaderboard_columns` key (only for an upload without problems)."""
    if scores.psnr_db is None:
        raise ValueError("an upload with problems has no scores")
    return {"psnr": float(scores.psnr_db), "runtime": float(scores.readme["runtime_s"]),
            "cpu": int(scores.readme["cpu"]), "extra_data": int(scores.readme["extra_data"])}


def _columns(scores: Scores) -> list[str]:
    keys = [k for k in (scores.rows[0] if scores.rows else {}) if k not in ("name", "frames")]
    return (["frames"] if scores.settings.track == "vqe" else []) + keys


_TITLES = {"psnr_db": "PSNR [dB]", "ssim": "SSIM", "frames": "frames scored"}


def _cell(key: str, value: Any) -> str:
    if key == "frames":
        return str(value)
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def render_scores(scores: Scores) -> str:
    """The per-image (per-video) table, the mean and the readme fields as plain text (no table without rows)."""
    keys = _columns(scores)
    first = "image" if scores.settings.track == "esr" else "video"
    lines = [[first] + [_TITLES.get(k, k) for k in keys]]
    lines += [[row["name"]] + [_cell(k, row[k]) for k in keys] for row in scores.rows]
    if scores.means:
        lines.append([f"mean ({len(scores.rows)})"] + ["" if k == "frames" else _cell(k, scores.means.get(k, ""))
                                                        for k in keys])
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in lines] if scores.rows else []
    labels = {f.key: f.labels[0] for f in readme_fields(scores.settings.results_format)}
    if scores.readme:
        text.append("readme.txt: " + "; ".join(f"{labels[k]} = {v}" for k, v in scores.readme.items()))
    return "\n".join(text)


def detailed_html(scores: Scores, report: Report) -> str:
    """``detailed_results.html``: the verdict, every problem, the per-image (per-video) table and the readme; every
    name from the upload escaped."""
    esc = html.escape
    keys = _columns(scores)
    first = "Image" if scores.settings.track == "esr" else "Video"
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>Detailed results</title></head><body>',
           f"<h2>{esc(report.verdict)}</h2>", f"<p>{esc(scores.settings.describe())}</p>"]
    if report.problems:
        out.append("<h3>Problems</h3><ul>" + "".join(f"<li>{esc(str(p))}</li>" for p in report.problems) + "</ul>")
    if report.warnings:
        out.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{esc(str(w))}</li>" for w in report.warnings) + "</ul>")
    out.append("<table border='1' cellpadding='4'><tr><th>" + esc(first) + "</th>"
               + "".join(f"<th>{esc(_TITLES.get(k, k))}</th>" for k in keys) + "</tr>")
    for row in scores.rows:
        out.append(f"<tr><td>{esc(str(row['name']))}</td>"
                   + "".join(f"<td>{esc(_cell(k, row[k]))}</td>" for k in keys) + "</tr>")
    if scores.means:
        out.append(f"<tr><th>mean ({len(scores.rows)})</th>"
                   + "".join(f"<th>{'' if k == 'frames' else esc(_cell(k, scores.means.get(k, '')))}</th>"
                             for k in keys) + "</tr>")
    out.append("</table>")
    if scores.readme:
        labels = {f.key: f.labels[0] for f in readme_fields(scores.settings.results_format)}
        out.append("<h3>readme.txt</h3><ul>" + "".join(f"<li>{esc(labels[k])}: {esc(str(v))}</li>"
                                                         for k, v in scores.readme.items()) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
