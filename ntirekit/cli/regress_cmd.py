"""``ntirekit regress``: re-measure recorded entries and fail on any regression (CI)."""

from __future__ import annotations

import json
from pathlib import Path

from typing import Sequence

import click

from ntirekit.cli.common import echo_json, entries_option, entry_root_paths, json_output, one_line_errors, trust_option
from ntirekit.cli.tables import table
from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device
from ntirekit.eval.regress import Finding, RegressError, record_reference
from ntirekit.eval.regress import regress as do_regress
from ntirekit.eval.tracks import TRACKS
from ntirekit.jobs import regress_measure
from ntirekit.jobs.cli import executor_options
from ntirekit.jobs.executors import ExecutorSettings


@click.command("regress")
@click.option("--against", "folder", type=click.Path(file_okay=False), default=None,
              help="Reference folder metrics/<fingerprint id>/ (default: the one of this device).")
@click.option("--tolerance-psnr", "tol_psnr", type=float, default=0.01, show_default=True,
              help="Largest allowed PSNR drop [dB].")
@click.option("--tolerance-runtime", "tol_runtime", type=float, default=0.10, show_default=True,
              help="Largest allowed relative growth of runtime / baseline runtime.")
@click.option("--baseline-entry", "baseline", default="rlfn_ntire", show_default=True,
              help="Entry that runtimes are compared against (measured in the same run).")
@click.option("--record", is_flag=True, help="Write the reference figures instead of comparing.")
@click.option("--entry", "names", multiple=True, help="--record: entry to record (repeatable).")
@click.option("--track", "tracks", multiple=True, type=click.Choice(list(TRACKS)),
              help="--record: track to record (repeatable).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--data", default=None, help="Dataset for quality tracks (default: the one each record ran with).")
@entries_option
@trust_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the fresh records here (CI artefact).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@executor_options
@one_line_errors()
@json_output
def regress(folder: str | None, tol_psnr: float, tol_runtime: float, baseline: str, record: bool,
            names: tuple[str, ...], tracks: tuple[str, ...], device: str, data: str | None,
            entry_roots: tuple[str, ...], out_dir: str | None, as_json: bool,
            executor: ExecutorSettings | None = None) -> None:
    """Compare fresh measurements with metrics/<fingerprint id>/ (exit status 1 listing every regression).

    \b
    ntirekit regress --record --entry rlfn_ntire --entry imdn --track overall --track psnr --data DIV2K
    ntirekit regress                                   # against metrics/<this device's fingerprint id>/
    ntirekit regress --against metrics/cuda-nvidia-h100-...-cu12.4 --tolerance-runtime 0.15
    """
    if folder is None:
        folder = str(Path("metrics") / fingerprint_id(fingerprint(resolve_device(device))))
    roots = [str(p) for p in entry_root_paths(entry_roots)]
    try:
        if record:
            records = record_reference(folder, entries=names, tracks=tracks, device=device, data=data,
                                       entry_roots=roots)
            for rec in records:
                status = "ok" if rec.get("status") == "ok" else f"FAILED: {rec.get('error')}"
                click.echo(f"{rec['entry']} [{rec['track']}]: {status}")
            click.echo(f"recorded {len(records)} records in {folder}")
            if any(r.get("status") != "ok" for r in records):
                raise SystemExit(1)
            return
        report = do_regress(folder, tol_psnr=tol_psnr, tol_runtime=tol_runtime, baseline=baseline, device=device,
                            data=data, entry_roots=roots, out_dir=out_dir,
                            measure=regress_measure(executor, out_dir, device=device, data=data, entry_roots=roots,
                                                    baseline=baseline))
    except RegressError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(findings_table(report.findings))
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        if report.ok:
            click.echo(f"\nno regression against {folder} ({len(report.findings)} checks)")
        else:
            click.echo(f"\n{len(report.regressions)} regression(s) against {folder}:")
            for finding in report.regressions:
                click.echo(f"  - {finding}")
    if not report.ok:
        raise SystemExit(1)


def findings_table(findings: Sequence[Finding]) -> str:
    """One line per check: entry, track, metric, recorded and new figure, verdict (``ok`` | ``REGRESSION``) and the
    note where any check has one."""
    rows = [[f.entry, f.track, f.metric, _show(f.recorded), _show(f.now), "ok" if f.ok else "REGRESSION", f.note]
            for f in findings]
    return table(["entry", "track", "metric", "recorded", "now", "verdict", "note"], rows,
                 keep=("entry", "track", "metric", "recorded", "now", "verdict"))


def _show(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else str(value))
