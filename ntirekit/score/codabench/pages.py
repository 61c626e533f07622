"""The pages of a validation-phase bundle (Markdown), written from the facts the kit holds.

ESR pages take the challenge's facts from its protocol (:mod:`ntirekit.rank.protocols`: title, PSNR gates, score
formula and baseline constants); VQE pages from the NTIRE 2022 scoring (:mod:`ntirekit.quality.vqe_scoring`). The
PSNR definition is the one the scoring program computes (:class:`~ntirekit.score.scoring.ScoringSettings`), and the
upload's layout and ``readme.txt`` are shown as ``ntirekit pack`` writes them.
"""

from __future__ import annotations

from ntirekit.pack.formats import render_readme
from ntirekit.quality.vqe_scoring import VqeScoring
from ntirekit.rank.metrics import METRICS
from ntirekit.rank.protocol import Protocol
from ntirekit.score.scoring import ScoringSettings, leaderboard_columns

__all__ = ["PAGES", "esr_pages", "vqe_pages", "terms_page"]

#: (title, file) of the pages, in the order Codabench shows them
PAGES = (("Overview", "pages/overview.md"), ("Evaluation", "pages/evaluation.md"),
         ("Submission", "pages/submission.md"))

_PSNR = {
    "challenge": "PSNR on the three RGB channels of the 8-bit images, {border}{crop}, "
                 "float64 mean squared error over H x W x 3, PSNR = 20 log10(255 / sqrt(MSE))",
    "paper": "PSNR on the BT.601 studio-range luma Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0, 1], Y kept "
             "as float), {border}{crop}, float64 MSE, peak 255",
}


def _psnr_text(settings: ScoringSettings) -> str:
    crop = " (the HR image mod-cropped to a multiple of the scale first)" if settings.track == "esr" else ""
    border = f"{settings.border} pixels shaved on every side" if settings.border else "no border shaved"
    return _PSNR[settings.protocol].format(border=border, crop=crop)


def _columns_text(settings: ScoringSettings) -> str:
    rows = "\n".join(f"| {c.title} | `{c.key}` | {c.meaning} |" for c in leaderboard_columns(settings))
    return "| column | key in scores.json | what it is |\n|---|---|---|\n" + rows


def _gates_text(protocol: Protocol) -> str:
    if not protocol.gates:
        return f"The {protocol.title} protocol sets no PSNR gate."
    lines = []
    for name, gate in protocol.gates.items():
        default = " (the one applied)" if name == protocol.default_gate else ""
        conditions = " and ".join(
            g.describe().replace(g.metric, METRICS[g.metric].label.replace("PSNR ", "PSNR on the ") + " set")
            for g in gate.gates)
        lines.append(f"- **{name}**{default}: {conditions}" + (f" ({gate.description})" if gate.description else ""))
    return "\n".join(lines)


def _score_text(protocol: Protocol) -> str:
    track = protocol.track()
    text = f"The final ranking ({track.title or track.name}): {track.describe()}."
    if protocol.baseline:
        consts = ", ".join(f"{METRICS[k].label} {v:g} {METRICS[k].unit}".strip() for k, v in protocol.baseline.items())
        device = protocol.baseline_device or "the organizers' GPU"
        text += f" The baseline ({protocol.baseline_entry}, measured on {device}): {consts}."
    return text


def _readme_example(fmt: str) -> str:
    return render_readme({"runtime_s": 0.02, "cpu": 0, "extra_data": 0, "description": "what your method does"}, fmt)


def esr_pages(protocol: Protocol, settings: ScoringSettings, images: int) -> dict[str, str]:
    """``{file: Markdown}`` of an ESR validation phase under ``protocol``."""
    title = protocol.title or protocol.name
    overview = f"""# {title}: validation phase

Upload the super-resolved (x{settings.border}) images of the {images} validation images. The scoring program compares
them with the hidden HR images and puts the PSNR on the leaderboard, with the runtime, device and extra data your
`readme.txt` declares.

The validation phase checks restoration quality only. The ranking of the challenge is decided in the final test
phase: the organizers run your submitted code (model file and checkpoint) with `ntirekit eval` on the validation and
test sets, and measure the PSNR, the runtime, FLOPs and parameters themselves, on their own GPU.
"""
    evaluation = f"""# Evaluation

**PSNR** ({settings.protocol} protocol): {_psnr_text(settings)}; the leaderboard shows the mean over the
{images} images. It is computed by the same code as `ntirekit eval --track psnr` (the kit's `ntirekit.quality.psnr`),
so a result you measure locally with the kit is the one shown here.

**PSNR gate of the final ranking** ({title}): an entry is ranked only if its PSNR, measured by the organizers in the
final test phase, meets

{_gates_text(protocol)}

{_score_text(protocol)}

The leaderboard of this phase:

{_columns_text(settings)}

The final phase measures the runtime itself.
"""
    submission = f"""# Submission

A zip holding one PNG per validation image, named like the HR image (`0801.png` for the input `0801x4.png`; not
`0801x4.png`), at the root of the zip (no folder around them), 8-bit RGB, exactly {settings.border} times the size of
the input, and a `readme.txt` with the four NTIRE fields:

```
{_readme_example(settings.results_format)}```

With the kit (`pip install ntirekit`), from your entry folder:

```bash
ntirekit eval --track psnr --data DIV2K_LSDIR/ --split valid --entries . --save-sr sr/
ntirekit pack sr/<entry> --format esr-results --result results/<entry>__runtime__*.json --extra-data 0 \\
    --description "what your method does"
```

`eval --save-sr` writes the SR images under the names the scoring program wants; `pack` writes `readme.txt` from a
runtime the kit measured (`--result` of an `eval --track runtime` record, or `--entry NAME` to time it) and zips it
all after checking it; `ntirekit score upload.zip --ref HR_FOLDER/` scores a zip the way this phase does.

Every problem of an upload (a missing, extra or misnamed file, a wrong size, a file that is not an 8-bit PNG, a
folder around the files, a missing `readme.txt` field) is one line in the submission's error output, and the
submission gets no score.
"""
    return {"pages/overview.md": overview, "pages/evaluation.md": evaluation, "pages/submission.md": submission}


def vqe_pages(scoring: VqeScoring, settings: ScoringSettings, videos: int) -> dict[str, str]:
    """``{file: Markdown}`` of a VQE validation phase under the NTIRE 2022 ``scoring``."""
    frames = ("every 10th frame of each video, 010, 020, ..., as the NTIRE 2022 validation server scored "
              "them" if settings.frame_step == 10 else
              "every frame of each video" if settings.frame_step == 1 else f"every {settings.frame_step}th frame")
    names = "`010.png`, `020.png`, ..." if settings.frame_step == 10 else "`001.png`, `002.png`, ..."
    every_10th = " --every-10th" if settings.frame_step == 10 else ""
    overview = f"""# Quality enhancement of compressed video: validation phase ({scoring.name})

Upload the enhanced frames of the {videos} validation videos ({frames}). The scoring program compares them with the
hidden clean frames and puts the PSNR on the leaderboard, with the runtime, device and extra data your `readme.txt`
declares. The final test phase scores every frame of the test videos with the same definition (`ntirekit eval
--track vqe`).
"""
    evaluation = f"""# Evaluation

**PSNR** ({settings.protocol} protocol): per frame, {_psnr_text(settings)}; per video the mean over its scored
frames, {frames}, frames without any error skipped; then the mean over the {videos} videos. This is the NTIRE
2022 definition ({scoring.aggregate}), computed by the same code as `ntirekit eval --track vqe`.

The leaderboard of this phase:

{_columns_text(settings)}
"""
    submission = f"""# Submission

A zip holding one folder per video, named like the input video (`001/`), with the enhanced frames as 8-bit RGB PNGs
numbered from 1 as `ffmpeg -i 001.mkv %3d.png` numbers them ({names}), and at the root a `readme.txt` with the four
NTIRE fields:

```
{_readme_example(settings.results_format)}```

With the kit:

```bash
ntirekit eval --track vqe --data CLIPS/ --entries . --save-frames up/{every_10th} --extra-data 0
ntirekit pack up/<entry> --format vqe-results
```

Every problem of an upload (a missing or extra video or frame, a misnamed frame, a wrong size, a file that is not an
8-bit PNG, a missing `readme.txt` field) is one line in the submission's error output, and the submission gets no
score.
"""
    return {"pages/overview.md": overview, "pages/evaluation.md": evaluation, "pages/submission.md": submission}


def terms_page(title: str) -> str:
    """``pages/terms.md``: the usual terms of an NTIRE challenge; organizers edit them before uploading."""
    return f"""# Terms of participation: {title}

- One account per team. A team's final entry is the code it submits for the final test phase, with a factsheet.
- Validation results are for checking your method; the final ranking is measured by the organizers.
- Results that rely on the validation or test ground truth, or on data the factsheet does not declare, are excluded.
- The organizers may publish the results, the factsheets and the names of the teams in the challenge report.
"""
