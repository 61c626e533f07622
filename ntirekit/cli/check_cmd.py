"""``ntirekit check``: ACCEPTED or REJECTED, and every problem of a submission zip."""

from __future__ import annotations

import json

import click

from ntirekit.cli.common import echo_json, json_output
from ntirekit.cli.pack_cmd import FORMAT_CHOICES
from ntirekit.pack import Limits, check_zip


@click.command("check")
@click.argument("zip_path", metavar="ZIP", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Submission format (auto: from MANIFEST.json or the file names).")
@click.option("--data", default=None, help="Dataset to check results against (names, counts, sizes).")
@click.option("--scale", type=int, default=None, help="Output/input size ratio of results (default 4 ESR, 1 VQE).")
@click.option("--load", is_flag=True, help="ESR code: also build the model and load its weights strictly, in an "
                                           "isolated child process (this runs the submitted code).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, help="--load time limit [s].")
@click.option("--memory-mb", type=int, default=4096, show_default=True, help="--load memory limit [MiB].")
@click.option("--max-files", type=int, default=None, help="Reject archives with more files.")
@click.option("--max-bytes", type=int, default=None, help="Reject archives that uncompress to more bytes.")
@click.option("--final", is_flag=True, help="Check as the final submission: a code submission without a factsheet is "
                                            "rejected (a warning otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@json_output
def check(zip_path: str, fmt: str, data: str | None, scale: int | None, load: bool, timeout_s: float,
          memory_mb: int, max_files: int | None, max_bytes: int | None, final: bool, as_json: bool) -> None:
    """Check a submission zip without extracting outside a temporary folder (exit status 1 when REJECTED).

    \b
    ntirekit check team99_rlfn_pruned.zip
    ntirekit check team99_rlfn_pruned.zip --final --load    # as the final submission, model built and loaded
    ntirekit check results.zip --format esr-results --data DIV2K --json
    """
    import dataclasses

    limits = Limits()
    if max_files is not None:
        limits = dataclasses.replace(limits, max_files=max_files)
    if max_bytes is not None:
        limits = dataclasses.replace(limits, max_total_bytes=max_bytes, max_file_bytes=min(max_bytes,
                                                                                           limits.max_file_bytes))
    report = check_zip(zip_path, fmt, data=data, scale=scale, limits=limits, load=load, timeout_s=timeout_s,
                       memory_mb=memory_mb, final=final)
    echo_json(json.dumps(report.to_dict(), indent=2, default=str) if as_json else report.render())
    if not report.ok:
        raise SystemExit(1)
