"""Scoring program of an NTIRE validation phase on Codabench, written by ntirekit (``ntirekit codabench
scoring-program``): it scores a results upload exactly as ``ntirekit score`` (and ``ntirekit eval``) does.

Codabench runs the command of ``metadata.yaml``, ``python3 $program/score.py $input $output``, with the participant's
upload unpacked in ``$input/res`` and the reference data (a reference folder: ``reference.json`` and PNGs) in
``$input/ref``. This writes ``$output/detailed_results.html`` (the verdict, every problem of the upload, one row per
image or video) and, when the upload has no problem, ``$output/scores.json`` with one number per leaderboard column.
An upload with problems gets every problem as one line on stderr and exit status 1 (Codabench marks it failed); the
reference data not being readable is exit status 2. How to score (track, PSNR protocol, border, frames) is read from
``settings.json`` beside this file. It needs Python 3.8+, numpy and Pillow only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ntirekit.pack.report import Report
from ntirekit.score.layout import list_files
from ntirekit.score.reference import ReferenceDataError, read_reference_folder
from ntirekit.score.scoring import ScoringSettings, detailed_html, leaderboard_scores, render_scores, score_upload

SETTINGS_FILE = "settings.json"
SCORES_FILE = "scores.json"
DETAILS_FILE = "detailed_results.html"


def run(input_dir: Path, output_dir: Path, settings: ScoringSettings) -> int:
    """Score ``input_dir/res`` against ``input_dir/ref`` into ``output_dir``; the exit status."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        reference = read_reference_folder(input_dir / "ref")
    except ReferenceDataError as exc:
        print(f"reference data: {exc}", file=sys.stderr)
        return 2
    report = Report(source="the upload")
    files = list_files(input_dir / "res", report) if (input_dir / "res").is_dir() else {}
    if not (input_dir / "res").is_dir():
        report.error("missing-upload", f"no folder {input_dir / 'res'}")
    try:
        scores = score_upload(files, reference, settings, report)
    except ReferenceDataError as exc:
        print(f"reference data: {exc}", file=sys.stderr)
        return 2
    (output_dir / DETAILS_FILE).write_text(detailed_html(scores, report), encoding="utf-8")
    print(f"{report.verdict}: {settings.results_format}, {settings.describe()}")
    print(render_scores(scores))
    for warning in report.warnings:
        print(f"warning: {warning}")
    if not report.ok:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        return 1
    board = json.dumps(leaderboard_scores(scores), allow_nan=False)
    (output_dir / SCORES_FILE).write_text(board + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``score.py [INPUT [OUTPUT]]`` (Codabench's defaults: ``/app/input``, ``/app/output``)."""
    args = sys.argv[1:] if argv is None else argv
    input_dir = Path(args[0]) if args else Path("/app/input")
    output_dir = Path(args[1]) if len(args) > 1 else Path("/app/output")
    settings_path = Path(__file__).resolve().parent / SETTINGS_FILE
    settings = ScoringSettings.from_dict(json.loads(settings_path.read_text(encoding="utf-8")))
    return run(input_dir, output_dir, settings)


if __name__ == "__main__":
    sys.exit(main())
