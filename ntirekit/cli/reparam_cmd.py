"""``ntirekit reparam ENTRY --out DIR``: write the deploy form of an entry with re-parameterizable blocks."""

from __future__ import annotations

import click

from ntirekit.cli.common import entries_option, load_registry, one_line_errors, trust_option
from ntirekit.measure.counts import params
from ntirekit.train.derive import reparameterize_entry


@click.command("reparam")
@click.argument("entry_name", metavar="ENTRY")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the deploy entry to (entry.toml + model code + <name>.pth).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="Training-form checkpoint (default: the entry's own weights; random if it has none).")
@click.option("--name", help="Name of the deploy entry (default: ENTRY_deploy).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out folder.")
@entries_option
@trust_option
@one_line_errors()
def reparam(entry_name: str, out_dir: str, weights: str | None, name: str | None, force: bool,
            entry_roots: tuple[str, ...]) -> None:
    """Merge every re-parameterizable block of ENTRY into plain convs and write the result as a deploy entry.

    It runs the entry's code in this process: untrusted entries (submissions/, --entries folders, zips) are refused
    unless --trust names their folder."""
    entry = load_registry(entry_roots)[entry_name]
    derived, diff = reparameterize_entry(entry, out_dir, weights=weights, name=name, overwrite=force)
    train_params = params(entry.build())
    deploy_params = params(derived.build())
    click.echo(f"{derived.name}: written to {derived.folder}")
    click.echo(f"  params {train_params:,} (training form) -> {deploy_params:,} (deploy form)")
    click.echo(f"  max |training - deploy| on a float64 check input: {diff:.3g}")
    if entry.spec.weights is None and weights is None:
        click.echo("  note: the entry has no weights; the deploy weights come from a random initialisation")
