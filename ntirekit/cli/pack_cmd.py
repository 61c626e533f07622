"""``ntirekit pack``: validate a submission folder and write its zip with ``MANIFEST.json``."""

from __future__ import annotations

import json

import click

from ntirekit.cli.common import echo_json, json_output
from ntirekit.pack import pack as do_pack
from ntirekit.pack.formats import FACTSHEET_RULE

FORMAT_CHOICES = ["auto", "esr-code", "esr-results", "vqe-results"]


@click.command("pack", help=f"""Validate SRC as a submission and pack it into a zip (exit status 1 when it is rejected).

\b
ntirekit pack submissions/team99_rlfn_pruned                     # ESR code (entry folder or NTIRE layout)
ntirekit pack submissions/team99_rlfn_pruned --final --force     # the final submission, replacing the zip
ntirekit pack sr_results/ --format esr-results --data DIV2K --result results/team99__overall__DEVICE.json
ntirekit pack vqe_results/ --format vqe-results --result results/x__vqe__DEVICE.json --extra-data 0

Factsheet: {FACTSHEET_RULE}. An existing zip is not overwritten without --force. Code that imports ntirekit is
a warning: the NTIRE harness runs submissions without the kit.
""")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Submission format (auto: from the files).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Zip to write (default: <entry or folder name>.zip).")
@click.option("--data", default=None, help="Dataset to check results against (names, counts, sizes); for --entry: "
                                           "the images to time on.")
@click.option("--scale", type=int, default=None, help="Output/input size ratio of results (default 4 ESR, 1 VQE).")
@click.option("--result", "result", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Result JSON of 'ntirekit eval' whose runtime and device fill readme.txt.")
@click.option("--entry", default=None, help="ESR results: time this entry to fill readme.txt's runtime and CPU/GPU.")
@click.option("--device", default="auto", show_default=True, help="Device for --entry timing.")
@click.option("--extra-data", type=click.Choice(["0", "1"]), default=None, help="readme.txt: extra training data?")
@click.option("--description", default=None, help="readme.txt: other description.")
@click.option("--allow-quick", is_flag=True, help="Results: take readme.txt's runtime from a CPU quick run's "
                                                  "--result anyway (refused by default: not the runtime per image; "
                                                  "a warning and a note in the description say so).")
@click.option("--final", is_flag=True, help="The final submission: a code submission without a factsheet is "
                                            "rejected (a warning otherwise).")
@click.option("--force", is_flag=True, help="Overwrite an existing zip (by default pack refuses to).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@json_output
def pack(src: str, fmt: str, out: str | None, data: str | None, scale: int | None, result: str | None,
         entry: str | None, device: str, extra_data: str | None, description: str | None, allow_quick: bool,
         final: bool, force: bool, as_json: bool) -> None:
    try:
        outcome = do_pack(src, fmt, out, data=data, scale=scale, result=result, entry=entry, device=device,
                          extra_data=None if extra_data is None else int(extra_data), description=description,
                          final=final, force=force, allow_quick=allow_quick)
    except OSError as exc:                      # e.g. the zip cannot be written where --out says
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    report = outcome.report
    if as_json:
        echo_json(json.dumps({**report.to_dict(), "zip": str(outcome.zip_path) if outcome.zip_path else None},
                              indent=2, default=str))
    else:
        click.echo(report.render())
        if outcome.zip_path:
            click.echo(f"wrote {outcome.zip_path} ({report.info.get('files')} files, {report.info.get('bytes'):,} "
                       "bytes)")
    if outcome.zip_path is None:
        raise SystemExit(1)
