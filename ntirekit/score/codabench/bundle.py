"""``ntirekit codabench bundle``: a Codabench competition bundle for a challenge's validation phase.

The bundle follows Codabench's documented format (docs.codabench.org: *Competition Bundle Structure* and *YAML
Structure*; the v2 unpacker ``src/apps/competitions/unpackers/v2.py`` of codalab/codabench; the bundles of
codalab/competition-examples ``codabench/``): a zip holding ``competition.yaml`` (``version: 2``) and the files it
names by relative path:

- ``logo.png`` (``image``), ``pages/terms.md`` (``terms``) and the pages (``pages``: overview, evaluation with the
  PSNR definition, the protocol's PSNR gate and score formula, submission with the upload's layout);
- one phase (``Validation``) with one task holding ``scoring_program.zip``
  (:func:`ntirekit.score.codabench.scoring_program.write_scoring_program`) and ``reference_data.zip`` (a reference
  folder, :func:`ntirekit.score.sources.write_reference_folder`);
- one leaderboard whose columns are exactly the keys the scoring program writes to ``scores.json``
  (:func:`ntirekit.score.scoring.leaderboard_columns`), ranked by the first (the PSNR);
- ``docker_image: codalab/codalab-legacy:py312`` (Python 3.12 with numpy and, through matplotlib, Pillow: all the
  scoring program needs) and ``enable_detailed_results: true`` (the per-image table).

``protocol`` is an ESR ranking protocol (``ntire2022`` ... ``ntire2026``: scale 4, the challenge PSNR) or a VQE
scoring (``ntire2022-vqe``: every frame; ``ntire2022-vqe-validation``: every 10th frame, as the 2022 validation
server did).
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ntirekit.core.errors import OptionError
from ntirekit.data.images import write_image
from ntirekit.quality.vqe_scoring import SCORINGS
from ntirekit.rank.protocol import available_protocols, load_protocol
from ntirekit.score.codabench.pages import PAGES, esr_pages, terms_page, vqe_pages
from ntirekit.score.codabench.scoring_program import write_scoring_program
from ntirekit.score.codabench.yamlw import dump_yaml
from ntirekit.score.scoring import ScoringSettings, leaderboard_columns
from ntirekit.score.sources import open_reference, write_reference_folder

__all__ = ["DOCKER_IMAGE", "BundleOptions", "bundle_protocols", "competition_document", "make_bundle"]

#: Codabench's Python 3.12 image (codalab/codalab-dockers ``Dockerfiles/Dockerfile-py312``: numpy 1.26, matplotlib
#: 3.8 and so Pillow): the scoring program needs nothing more
DOCKER_IMAGE = "codalab/codalab-legacy:py312"
SCORING_ZIP = "scoring_program.zip"
REFERENCE_ZIP = "reference_data.zip"
LOGO = "logo.png"
TERMS = "pages/terms.md"
#: seconds a scoring run may take (Codabench's default is 600; 200 DIV2K-size images take about a minute)
EXECUTION_TIME_LIMIT = 3600
_STORED = (".png", ".zip")


def bundle_protocols() -> list[str]:
    """The protocols a bundle can be made for: the packaged ESR protocols and the VQE scorings."""
    return available_protocols() + sorted(SCORINGS)


@dataclass(frozen=True)
class BundleOptions:
    """What a bundle's ``competition.yaml`` says beyond the protocol's facts."""

    start: _dt.datetime
    end: _dt.datetime | None = None
    title: str | None = None
    max_submissions_per_day: int = 5
    max_submissions: int = 100


def competition_document(title: str, description: str, settings: ScoringSettings, options: BundleOptions
                         ) -> dict[str, Any]:
    """The ``competition.yaml`` document of a validation phase (module docstring)."""
    phase: dict[str, Any] = {
        "index": 0, "name": "Validation", "description": f"{settings.results_format} uploads scored on the "
                                                        f"validation set: {settings.describe()}",
        "start": options.start}
    if options.end is not None:
        phase["end"] = options.end
    phase.update({"execution_time_limit": EXECUTION_TIME_LIMIT,
                  "max_submissions_per_day": options.max_submissions_per_day,
                  "max_submissions": options.max_submissions, "tasks": [0]})
    columns = [{"title": c.title, "key": c.key, "index": i, "sorting": c.sorting, "precision": c.precision}
               for i, c in enumerate(leaderboard_columns(settings))]
    return {
        "version": 2, "title": title, "description": description, "image": LOGO, "terms": TERMS,
        "registration_auto_approve": False, "docker_image": DOCKER_IMAGE, "enable_detailed_results": True,
        "make_programs_available": True, "make_input_data_available": False,
        "pages": [{"title": t, "file": f} for t, f in PAGES],
        "phases": [phase],
        "tasks": [{"index": 0, "name": f"Validation ({settings.results_format})", "description": settings.describe(),
                   "scoring_program": SCORING_ZIP, "reference_data": REFERENCE_ZIP}],
        "leaderboards": [{"title": "Results", "key": "main", "submission_rule": "Force_Last", "columns": columns}],
    }


def _logo(path: Path) -> None:
    """A 128x128 logo: a smooth colour ramp with a darker band (no text, no data of anyone's)."""
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    rgb = np.stack([40 + xx * 1.5, 90 + yy, 200 - xx * 0.6], -1)
    rgb[48:80] *= 0.55
    write_image(path, np.clip(rgb, 0, 255).astype(np.uint8))


def _zip_folder(folder: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            zf.write(path, rel, zipfile.ZIP_STORED if path.suffix in _STORED else zipfile.ZIP_DEFLATED)


def make_bundle(protocol: str, ref: str | os.PathLike, out: str | os.PathLike, *, options: BundleOptions,
                scale: int = 4, psnr_protocol: str | None = None, split: str | None = None,
                force: bool = False) -> Path:
    """Write the bundle of ``protocol`` with the reference data ``ref`` (what ``eval --data`` takes, or a reference
    folder) to the zip ``out``; returns it. ``psnr_protocol``: ``challenge`` (RGB, the default of both tracks) or
    ``paper`` (Y). An existing ``out`` is kept unless ``force``."""
    out = Path(out)
    if out.exists() and not force:
        raise OptionError(f"{out} exists: not overwritten (--force to replace it)")
    if protocol in SCORINGS:
        scoring = SCORINGS[protocol]
        settings = ScoringSettings("vqe", psnr_protocol or scoring.psnr_protocol, border=scoring.border,
                                   frame_step=scoring.frame_step)
        reference = open_reference(ref, "vqe")
        title = options.title or f"NTIRE 2022 quality enhancement of compressed video: validation ({protocol})"
        pages = vqe_pages(scoring, settings, len(reference.videos))
    elif protocol in available_protocols():
        challenge = load_protocol(protocol)
        settings = ScoringSettings("esr", psnr_protocol or "challenge", border=scale, frame_step=1)
        reference = open_reference(ref, "esr", scale=scale, split=split)
        title = options.title or f"{challenge.title or challenge.name}: validation phase"
        pages = esr_pages(challenge, settings, len(reference.images))
    else:
        raise OptionError(f"unknown protocol {protocol!r} (known: {', '.join(bundle_protocols())})")
    description = f"Validation phase: upload {settings.results_format} ({reference.size}); {settings.describe()}."
    document = competition_document(title, description, settings, options)
    with tempfile.TemporaryDirectory(prefix="ntirekit-bundle-", dir=out.resolve().parent) as tmp_name:
        tmp = Path(tmp_name)
        stage = tmp / "bundle"
        write_reference_folder(reference, tmp / "reference_data", settings.frame_step)
        write_scoring_program(tmp / "scoring_program", settings)
        stage.mkdir()
        _zip_folder(tmp / "reference_data", stage / REFERENCE_ZIP)
        _zip_folder(tmp / "scoring_program", stage / SCORING_ZIP)
        for name, text in {**pages, TERMS: terms_page(title)}.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text, encoding="utf-8")
        _logo(stage / LOGO)
        (stage / "competition.yaml").write_text(dump_yaml(document, comment=(
            "Codabench competition bundle written by ntirekit (ntirekit codabench bundle).\n"
            "Format: docs.codabench.org, Competition Bundle Structure and YAML Structure.")), encoding="utf-8")
        staged = tmp / "bundle.zip"
        _zip_folder(stage, staged)
        os.replace(staged, out)
    return out
