"""``ntirekit codabench``: the scoring program and the competition bundle of a validation phase on Codabench."""

from __future__ import annotations

import datetime as _dt

import click

from ntirekit.score.codabench.bundle import BundleOptions, bundle_protocols, make_bundle
from ntirekit.score.codabench.scoring_program import write_scoring_program
from ntirekit.score.scoring import ScoringSettings


@click.group("codabench")
def codabench() -> None:
    """A challenge's validation phase on Codabench: the scoring program and the competition bundle."""


@codabench.command("scoring-program")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False))
@click.option("--track", type=click.Choice(["esr", "vqe"]), default="esr", show_default=True,
              help="esr-results (SR images) or vqe-results (frames per video).")
@click.option("--scale", type=click.IntRange(min=1), default=4, show_default=True,
              help="ESR scale; also the border shaved before the PSNR.")
@click.option("--protocol", type=click.Choice(["challenge", "paper"]), default="challenge", show_default=True,
              help="PSNR protocol: challenge = RGB; paper = Y channel (BT.601).")
@click.option("--every-10th", "every_10th", is_flag=True, help="VQE: score frames 010, 020, ... only.")
def scoring_program(out: str, track: str, scale: int, protocol: str, every_10th: bool) -> None:
    """Write a self-contained Codabench scoring program into OUT (metadata.yaml, score.py, settings.json); it needs
    numpy and Pillow only and scores as 'ntirekit score' does.

    \b
    ntirekit codabench scoring-program program/ --track esr --scale 4
    """
    settings = ScoringSettings(track, protocol, border=scale if track == "esr" else 0,
                               frame_step=10 if every_10th else 1)
    for path in write_scoring_program(out, settings):
        click.echo(path)


def _date(text: str | None) -> _dt.datetime | None:
    if text is None:
        return None
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"a date as YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]' (UTC), got {text!r}") from None


@codabench.command("bundle")
@click.option("--protocol", required=True, type=click.Choice(bundle_protocols()),
              help="An ESR ranking protocol (its gate and score formula go into the pages) or a VQE scoring "
                   "(ntire2022-vqe: every frame; ntire2022-vqe-validation: every 10th frame).")
@click.option("--ref", required=True, type=click.Path(exists=True, file_okay=False),
              help="The validation ground truth: what 'eval --data' takes (or a reference folder).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The bundle zip to write.")
@click.option("--split", type=click.Choice(["valid", "test"]), default=None,
              help="Which split a DIV2K-style --ref root opens (default valid).")
@click.option("--scale", type=click.IntRange(min=1), default=4, show_default=True, help="ESR scale (and border).")
@click.option("--psnr-protocol", type=click.Choice(["challenge", "paper"]), default=None,
              help="PSNR protocol of the leaderboard (default challenge: RGB).")
@click.option("--start", default=None, help="Start of the phase, UTC (YYYY-MM-DD[ HH:MM]); default: today.")
@click.option("--end", default=None, help="End of the phase, UTC (default: none, it stays open).")
@click.option("--title", default=None, help="The competition's title (default from the protocol).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def bundle(protocol: str, ref: str, out: str, split: str | None, scale: int, psnr_protocol: str | None,
           start: str | None, end: str | None, title: str | None, force: bool) -> None:
    """Write a Codabench competition bundle for a validation phase: competition.yaml, pages, the scoring program
    and the reference data, ready to upload.

    \b
    ntirekit codabench bundle --protocol ntire2026 --ref DIV2K_LSDIR/ --split valid --out bundle.zip
    ntirekit codabench bundle --protocol ntire2022-vqe-validation --ref clips/ --out vqe_bundle.zip
    """
    today = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    options = BundleOptions(start=_date(start) or today, end=_date(end), title=title)
    path = make_bundle(protocol, ref, out, options=options, scale=scale, psnr_protocol=psnr_protocol, split=split,
                       force=force)
    click.echo(f"wrote {path}")
