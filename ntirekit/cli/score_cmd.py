"""``ntirekit score``: an uploaded results zip (or folder) scored against ground truth, as a validation server does."""

from __future__ import annotations

import json

import click

from ntirekit.cli.common import echo_json, json_output
from ntirekit.score import score_results
from ntirekit.score.scoring import render_scores


@click.command("score")
@click.argument("results", metavar="RESULTS", type=click.Path())
@click.option("--ref", required=True, type=click.Path(exists=True, file_okay=False),
              help="Ground truth: what 'eval --data' takes (an image dataset; VQE clips with their clean sources, or "
                   "a folder of clean clips), or a reference folder of a competition bundle (reference.json).")
@click.option("--track", type=click.Choice(["esr", "vqe"]), default=None,
              help="esr-results or vqe-results (default: from the reference folder, else from the upload's layout).")
@click.option("--scale", type=click.IntRange(min=1), default=4, show_default=True,
              help="ESR scale; also the border shaved before the PSNR.")
@click.option("--protocol", type=click.Choice(["challenge", "paper"]), default="challenge", show_default=True,
              help="PSNR protocol: challenge = RGB on the 8-bit images; paper = Y channel (BT.601).")
@click.option("--ssim", "ssim_too", is_flag=True, help="Also SSIM (same protocol and border).")
@click.option("--every-10th", "every_10th", is_flag=True,
              help="VQE: score frames 010, 020, ... only, as the NTIRE 2022 validation server did (default: every "
                   "frame, or what a reference folder holds).")
@click.option("--split", type=click.Choice(["valid", "test"]), default=None,
              help="Which split a DIV2K-style --ref root opens (default valid).")
@click.option("--json", "as_json", is_flag=True, help="Print the report and the scores as JSON.")
@json_output
def score(results: str, ref: str, track: str | None, scale: int, protocol: str, ssim_too: bool, every_10th: bool,
          split: str | None, as_json: bool) -> None:
    """Score an uploaded results zip or folder (esr-results: SR PNGs named like the HR images; vqe-results: one
    folder of PNG frames per video) against ground truth, exactly as 'eval' scores the same outputs. Every problem of
    the upload is one line; exit status 1 when there is one.

    \b
    ntirekit score rlfn_ntire.zip --ref ../shared/data/images/Set5
    ntirekit score up.zip --ref clips/ --every-10th                  # VQE, as the 2022 validation server
    ntirekit score results.zip --ref DIV2K/ --protocol paper --ssim --json
    """
    outcome = score_results(results, ref, track=track, scale=scale, protocol=protocol, ssim_too=ssim_too,
                            frame_step=10 if every_10th else None, split=split)
    if as_json:
        echo_json(json.dumps(outcome.to_dict(), indent=2, default=str))
    else:
        scores = outcome.scores
        head = outcome.report.render()
        if scores is not None:
            head = head.replace(outcome.report.source, f"{outcome.report.source} against {scores.reference}: "
                                                       f"{scores.settings.describe()}", 1)
        click.echo(head)
        table = render_scores(scores) if scores is not None else ""
        if table:
            click.echo(table)
    if not outcome.report.ok:
        raise SystemExit(1)
