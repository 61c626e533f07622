"""``ntirekit list``: every discovered entry with its spec and whether its weights are at hand."""

from __future__ import annotations

import json
from typing import Any

import click
from tabulate import tabulate

from ntirekit.cli.common import echo_json, entries_option, json_output, load_registry
from ntirekit.core.spec import Entry, EntryError
from ntirekit.eval.isolate import is_untrusted


def describe(entry: Entry) -> dict[str, Any]:
    """The row ``list`` shows for one entry; ``params`` is counted from the built model (None if it fails to build,
    and for an untrusted entry, whose code ``list`` never imports: :func:`ntirekit.eval.isolate.is_untrusted`)."""
    params: int | None = None
    error = None
    untrusted = is_untrusted(entry)
    if not untrusted:
        try:
            params = sum(p.numel() for p in entry.build().parameters())
        except EntryError as exc:
            error = str(exc)
    row = {"name": entry.name, "track": entry.spec.track, "task": entry.spec.task, "scale": entry.spec.scale,
           "data_range": entry.spec.data_range, "params": params,
           "weights": "none" if entry.spec.weights is None else ("yes" if entry.has_weights() else "missing"),
           "untrusted": untrusted, "folder": str(entry.folder)}
    if error:
        row["error"] = error
    return row


def _params_cell(row: dict[str, Any]) -> str:
    if row["params"] is not None:
        return f"{row['params']:,}"
    return "untrusted" if row["untrusted"] else "error"


@click.command("list")
@entries_option
@click.option("--track", type=click.Choice(["esr", "vqe"]), help="Only entries of this track.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects instead of a table.")
@json_output
def list_entries(entry_roots: tuple[str, ...], track: str | None, as_json: bool) -> None:
    """List entries: name, track, task, scale, data range, params and whether weights are available.

    The code of untrusted entries (submissions/, zips) is not imported here, so their params show as "untrusted".
    """
    rows = [describe(e) for e in load_registry(entry_roots).select(track=track)]
    if as_json:
        echo_json(json.dumps(rows, indent=2))
        return
    table = [[r["name"], r["track"], r["task"], f"x{r['scale']}", f"{r['data_range']:g}",
              _params_cell(r), r["weights"]] for r in rows]
    click.echo(tabulate(table, headers=["entry", "track", "task", "scale", "range", "params", "weights"]))
    for r in rows:
        if "error" in r:
            click.echo(f"error: {r['error']}", err=True)
