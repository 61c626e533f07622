"""``ntirekit prune ENTRY (--widths ... | --target-macs-ratio R) --out DIR``: structured channel pruning."""

from __future__ import annotations

import click

from ntirekit.cli.common import echo_err, entries_option, load_registry, one_line_errors, trust_option
from ntirekit.core.spec import thaw
from ntirekit.measure.counts import macs_ntire2022, params
from ntirekit.train.prune import named_groups, trace_channels, width_spec_of
from ntirekit.train.prune.entry import COLLAPSE_DB, DEFAULT_CRITERION, parse_widths, prune_entry


@click.command("prune")
@click.argument("entry_name", metavar="ENTRY")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder to write the pruned entry to (entry.toml + model code + <name>.pth).")
@click.option("--widths", help="Widths per width name or channel group, e.g. 'trunk=46,mid=48' (see --list).")
@click.option("--target-macs-ratio", type=float,
              help="Instead of --widths: shrink the family's default widths uniformly until MACs <= this fraction.")
@click.option("--criterion", type=click.Choice(["l1", "l1_inout", "act"]), default=DEFAULT_CRITERION,
              show_default=True,
              help="act: mean |activation| x L1 norm of the reading columns, on calibration images (data-aware, the "
                   "default: l1 alone collapses RLFN at 46/48 to about 6 dB); l1: L1 norm of the producing filters "
                   "summed over the coupled group; l1_inout: plus the input columns that read the channel.")
@click.option("--calibration", default="skimage", show_default=True,
              help="HR images for --criterion act: 'skimage' or a folder.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="Checkpoint to prune (default: the entry's own weights).")
@click.option("--name", help="Name of the pruned entry (default: ENTRY_pruned).")
@click.option("--list", "list_groups", is_flag=True, help="Only list the prunable widths and channel groups.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out folder.")
@entries_option
@trust_option
@one_line_errors()
def prune(entry_name: str, out_dir: str | None, widths: str | None, target_macs_ratio: float | None, criterion: str,
          calibration: str, weights: str | None, name: str | None, list_groups: bool, force: bool,
          entry_roots: tuple[str, ...]) -> None:
    """Prune coupled channel groups of ENTRY by importance and write the pruned entry.

    The PSNR before and after is reported on a small calibration set (the centre 96x96 of the five embedded sample
    photos; challenge protocol), and a drop of more than 3 dB is a loud warning: fine-tune the result, or prune
    with --criterion act if another criterion was used.
    """
    entry = load_registry(entry_roots)[entry_name]
    if list_groups:
        model = entry.build()
        graph = trace_channels(model)
        spec = width_spec_of(model)
        for wname, groups in named_groups(graph, spec).items():
            kw = f" (argument {spec.kwarg(wname)})" if spec and wname in spec.widths else ""
            sizes = sorted({g.width for g in groups})
            click.echo(f"{wname}{kw}: width {'/'.join(map(str, sizes))}, {len(groups)} group(s): "
                       + ", ".join(g.name for g in groups[:6]) + (" ..." if len(groups) > 6 else ""))
        return
    if out_dir is None:
        raise click.UsageError("--out is required (unless --list)")
    if (widths is None) == (target_macs_ratio is None):
        raise click.UsageError("give exactly one of --widths and --target-macs-ratio")
    derived, result = prune_entry(entry, out_dir, widths=parse_widths(widths) if widths else None,
                                  target_macs_ratio=target_macs_ratio, criterion=criterion, weights=weights,
                                  name=name, calibration=calibration, overwrite=force)
    before, after = entry.build(), derived.build()
    m0, m1 = macs_ntire2022(before), macs_ntire2022(after)
    click.echo(f"{derived.name}: written to {derived.folder}")
    click.echo(f"  model kwargs: {thaw(derived.spec.kwargs)}")
    click.echo(f"  params {params(before):,} -> {params(after):,}; MACs (2022 counter, 1x3x256x256) "
               f"{m0 / 1e9:.3f} G -> {m1 / 1e9:.3f} G (ratio {m1 / m0:.3f})")
    check = result.psnr
    if check is None:
        click.echo("  PSNR not checked: the source entry has random weights")
        return
    click.echo(f"  PSNR (challenge, {check.images} sample crops of {check.size}x{check.size}, {criterion} criterion): "
               f"{check.before_db:.2f} dB -> {check.after_db:.2f} dB ({-check.drop_db:+.2f} dB)")
    if check.collapsed:
        hint = ("fine-tune it (ntirekit finetune) or keep more channels" if criterion == "act" else
                "prune with --criterion act (data-aware), then fine-tune")
        echo_err(f"WARNING: pruning collapsed {entry.name}: PSNR fell by {check.drop_db:.2f} dB (more than "
                 f"{COLLAPSE_DB:g} dB) to {check.after_db:.2f} dB; {hint}")
