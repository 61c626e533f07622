"""``ntirekit import-ntire``: entry folders from a checkout in the NTIRE ESR repository layout."""

from __future__ import annotations

import click

from ntirekit.cli.common import one_line_errors
from ntirekit.pack.legacy import LegacyError, import_ntire as do_import
from ntirekit.core.registry import discover
from ntirekit.eval.isolate import call_isolated
from ntirekit.eval.probe import load_probe


@click.command("import-ntire")
@click.argument("repo_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--map", "map_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="TOML mapping: per team id the model file, class, kwargs, checkpoint and data range.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the entries.")
@click.option("--copy-weights", is_flag=True, help="Copy checkpoints into the entries (default: reference by path "
                                                   "and sha256).")
@click.option("--force", is_flag=True, help="Replace entry folders that already exist in --out.")
@click.option("--check", "check_load", is_flag=True, help="Build each entry and load its weights strictly, each in "
                                                          "an isolated child process.")
def import_ntire(repo_dir: str, map_path: str, out_dir: str, copy_weights: bool, force: bool,
                 check_load: bool) -> None:
    """Turn REPO_DIR (models/teamXX_Name.py + model_zoo/) into entry folders in --out.

    \b
    ntirekit import-ntire NTIRE2022_ESR --map teams.toml --out imported/
    ntirekit eval --entries imported/ --track overall
    """
    try:
        folders = do_import(repo_dir, map_path, out_dir, copy_weights=copy_weights, force=force)
    except LegacyError as exc:
        raise click.ClickException(str(exc)) from None
    for folder in folders:
        click.echo(f"wrote {folder}")
    if check_load:
        _check(folders)


@one_line_errors()
def _check(folders: list) -> None:
    registry = discover(folders, include_defaults=False)
    failed = 0
    for entry in registry.values():
        rec = call_isolated(entry, load_probe, timeout_s=300, memory_mb=4096)
        ok = rec.get("status") == "ok"
        failed += not ok
        click.echo(f"{entry.name}: " + (f"loads strictly ({rec.get('params'):,} params)" if ok else
                                        f"FAILED: {rec.get('error')}"))
    if failed:
        raise SystemExit(1)
