"""``ntirekit list``: every discovered entry with its spec and whether its weights are at hand."""

from __future__ import annotations

import json
from typing import Any

import click
from tabulate import tabulate

from ntirekit.cli.common import entries_option, load_registry
from ntirekit.entry import Entry, EntryError


def describe(entry: Entry) -> dict[str, Any]:
    """The row ``list`` shows for one entry; ``params`` is counted from the built model (None if it fails to build)."""
    try:
        params: int | None = sum(p.numel() for p in entry.build().parameters())
        error = None
    except EntryError as exc:
        params, error = None, str(exc)
    row = {"name": entry.name, "track": entry.spec.track, "task": entry.spec.task, "scale": entry.spec.scale,
           "data_range": entry.spec.data_range, "params": params,
           "weights": "none" if entry.spec.weights is None else ("yes" if entry.has_weights() else "missing"),
           "folder": str(entry.folder)}
    if error:
        row["error"] = error
    return row


@click.command("list")
@entries_option
@click.option("--track", type=click.Choice(["esr", "vqe"]), help="Only entries of this track.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects instead of a table.")
def list_entries(entry_roots: tuple[str, ...], track: str | None, as_json: bool) -> None:
    """List entries: name, track, task, scale, data range, params and whether weights are available."""
    rows = [describe(e) for e in load_registry(entry_roots).select(track=track)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [[r["name"], r["track"], r["task"], f"x{r['scale']}", f"{r['data_range']:g}",
              f"{r['params']:,}" if r["params"] is not None else "error", r["weights"]] for r in rows]
    click.echo(tabulate(table, headers=["entry", "track", "task", "scale", "range", "params", "weights"]))
    for r in rows:
        if "error" in r:
            click.echo(f"error: {r['error']}", err=True)
