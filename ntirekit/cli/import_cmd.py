"""``ntirekit import-ntire``: entry folders from a checkout in the NTIRE ESR repository layout."""

from __future__ import annotations

import json
from typing import Any

import click

from ntirekit.cli.common import echo_json, json_output, one_line_errors
from ntirekit.core.registry import discover
from ntirekit.eval.isolate import call_isolated
from ntirekit.eval.probe import load_probe
from ntirekit.pack.importer.code import missing_packages
from ntirekit.pack.importer.report import pip_line, render, rows
from ntirekit.pack.legacy import LegacyError, import_repository


@click.command("import-ntire")
@click.argument("repo_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--map", "map_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="TOML mapping overriding, team by team, the map derived from the repository's test_demo.py.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the entries.")
@click.option("--write-map", "write_map", default=None, type=click.Path(dir_okay=False),
              help="Also write the map used (derived, merged with --map) to this TOML file for review.")
@click.option("--force", is_flag=True, help="Replace entry folders that already exist in --out.")
@click.option("--check", "check_load", is_flag=True, help="Build each entry and load its weights, each in an "
                                                          "isolated child process.")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
@json_output
def import_ntire(repo_dir: str, map_path: str | None, out_dir: str, write_map: str | None,
                 force: bool, check_load: bool, as_json: bool) -> None:
    """Turn REPO_DIR (models/teamXX_Name.py + model_zoo/ + test_demo.py) into entry folders in --out.

    The report ends with one `pip install ...` line naming every third-party package the teams' code imports that
    is missing here (nothing is installed).

    \b
    ntirekit import-ntire NTIRE2024_ESR --out imported/ --check --write-map imported/teams.toml
    ntirekit import-ntire NTIRE2022_ESR --map fixes.toml --out imported/
    ntirekit eval --entries imported/ --track overall
    """
    try:
        outcome = import_repository(repo_dir, out_dir, map_path=map_path, write_map=write_map, force=force)
    except LegacyError as exc:
        raise click.ClickException(str(exc)) from None
    if not as_json:
        for folder in outcome.folders:
            click.echo(f"wrote {folder}")
        if write_map:
            click.echo(f"wrote the map to {write_map}")
    records = _check(outcome.folders) if check_load else {}
    table = rows(outcome.teams, outcome.skipped, records)
    missing = missing_packages(repo_dir, [rel for team in outcome.teams for rel in team.code])
    if as_json:
        echo_json(json.dumps({"out": str(out_dir), "teams": table,
                               "evaluate": f"ntirekit eval --entries {out_dir} --track overall",
                               "missing_packages": missing, "pip_install": pip_line(missing) or None}, indent=2))
    else:
        click.echo(render(table, out_dir, missing))
    if check_load and any(r["status"].startswith("failed") for r in table):
        raise SystemExit(1)


@one_line_errors()
def _check(folders: list) -> dict[str, dict[str, Any]]:
    """Per entry name, the record of building it and loading its weights in an isolated child process."""
    registry = discover(folders, include_defaults=False)
    return {entry.name: call_isolated(entry, load_probe, timeout_s=300, memory_mb=4096)
            for entry in registry.values()}
