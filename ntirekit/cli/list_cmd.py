"""``ntirekit list``: every discovered entry with its spec and whether its weights are at hand."""

from __future__ import annotations

import json
from typing import Any

import click
from tabulate import tabulate

from ntirekit.cli.common import echo_json, entries_option, json_output, load_registry, trust_option
from ntirekit.core.spec import Entry, EntryError
from ntirekit.core.trust import is_untrusted
from ntirekit.eval.limits import jail_limits
from ntirekit.eval.measure_graph import measure_entry
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import get_track


def describe(entry: Entry, load: bool = False) -> dict[str, Any]:
    """The row ``list`` shows for one entry: its ``entry.toml`` only (an untrusted entry's code is never imported
    here: :func:`ntirekit.core.trust.is_untrusted`). ``params`` is counted from the built model for a trusted entry;
    for an untrusted one with ``load``, from its exported graph (its code runs in the sandbox:
    :func:`ntirekit.eval.measure_graph.measure_entry`), else None."""
    params: int | None = None
    error = None
    untrusted = is_untrusted(entry.folder)
    try:
        if not untrusted:
            params = sum(p.numel() for p in entry.build().parameters())
        elif load and entry.spec.track == "esr":
            params = _graph_params(entry)
    except EntryError as exc:
        error = str(exc)
    row = {"name": entry.name, "track": entry.spec.track, "task": entry.spec.task, "scale": entry.spec.scale,
           "data_range": entry.spec.data_range, "params": params,
           "weights": "none" if entry.spec.weights is None else ("yes" if entry.has_weights() else "missing"),
           "untrusted": untrusted, "folder": str(entry.folder)}
    if error:
        row["error"] = error
    return row


def _graph_params(entry: Entry) -> int:
    options = EvalOptions(track="complexity", device="cpu", progress=False, extra={"fvcore": False})
    fields = measure_entry(entry, options, [], memory=False, limits=jail_limits(get_track("complexity"), options)).fields
    return int(fields["params"])


def _params_cell(row: dict[str, Any]) -> str:
    if row["params"] is not None:
        return f"{row['params']:,}"
    return "untrusted" if row["untrusted"] else "error"


@click.command("list")
@entries_option
@click.option("--track", type=click.Choice(["esr", "vqe"]), help="Only entries of this track.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects instead of a table.")
@click.option("--load", is_flag=True, help="Count the params of untrusted image entries on their exported graphs "
                                          "(their code runs in the sandbox; slower).")
@trust_option
@json_output
def list_entries(entry_roots: tuple[str, ...], track: str | None, as_json: bool, load: bool) -> None:
    """List entries: name, track, task, scale, data range, params and whether weights are available.

    The code of untrusted entries (submissions/, --entries folders, zips) is never imported here: their params show
    as "untrusted", or with --load are counted on the graph their code exports in the sandbox.
    """
    rows = [describe(e, load) for e in load_registry(entry_roots).select(track=track)]
    if as_json:
        echo_json(json.dumps(rows, indent=2))
        return
    table = [[r["name"], r["track"], r["task"], f"x{r['scale']}", f"{r['data_range']:g}",
              _params_cell(r), r["weights"]] for r in rows]
    click.echo(tabulate(table, headers=["entry", "track", "task", "scale", "range", "params", "weights"]))
    for r in rows:
        if "error" in r:
            click.echo(f"error: {r['error']}", err=True)
