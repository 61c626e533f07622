"""``ntirekit leaderboard``: rank result records and published tables under an NTIRE protocol."""

from __future__ import annotations

from pathlib import Path

import click

from ntirekit.cli.common import echo_err, one_line_errors
from ntirekit.rank.inputs import PUBLISHED, load_results, published_table
from ntirekit.core.records import SPLIT_RULE
from ntirekit.rank.leaderboard import BASELINE_MODES, WARNING_NOTES, build_leaderboard
from ntirekit.rank.metrics import RUNTIME_STATS
from ntirekit.rank.plot import pareto_plot
from ntirekit.rank.protocol import available_protocols, load_protocol, load_protocol_file
from ntirekit.rank.render import FORMATS, render
from ntirekit.rank.timing import MAX_RUNTIME_SPREAD


_HELP = f"""Rank RESULTS (result JSON files, folders of them, published-figures CSV files) under an NTIRE protocol.

\b
ntirekit leaderboard results/ --protocol ntire2022 --track overall --format md
ntirekit leaderboard --published ntire2022 --track overall --format latex --plot pareto.png
ntirekit leaderboard results/ --protocol ntire2024 --baseline measured

Every table has a Weights column; entries measured with random weights are listed apart and not ranked unless
--allow-random. A runtime, params or FLOPs figure that is not a positive finite number is refused (the row is not
ranked; one line says which). PSNR gates are applied, or, where no result carries the PSNR a gate needs, a line
says the gate was not applied and the ranked rows are marked ungated.

A runtime from a quick run (part of the inputs, or crops: eval's CPU default) or whose spread (IQR/median of its
timings) is above {MAX_RUNTIME_SPREAD:g} cannot rank: it is marked *, its row is not ranked on a track that ranks
runtime (--allow-unsteady ranks it with a caveat), and one line says so. Score protocols (2024 on) score against
the published baseline constants where the runtimes were measured on their GPU, else against the baseline entry
measured on the same device when the results hold it (one line says so); a score that overflows is refused.

Which split a PSNR measured: {SPLIT_RULE}.
"""


@click.command("leaderboard", help=_HELP)
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--protocol", "-p", default=None,
              help=f"Packaged protocol: {', '.join(available_protocols())} (default ntire2022).")
@click.option("--protocol-file", type=click.Path(dir_okay=False),
              help="A protocol of your own (TOML: metrics, directions, rank-sum or score weights, gates).")
@click.option("--track", "-t", default=None, help="Track of the protocol (default: its main track).")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write a Pareto plot (PNG) of PSNR against runtime.")
@click.option("--baseline", type=click.Choice(BASELINE_MODES), default="auto", show_default=True,
              help="Score constants (and runtime scale) from the protocol as published, or from the baseline entry "
                   "measured on each device (runtime and memory then become ratios to it); auto: published where "
                   "the runtimes were measured on the published baseline's GPU, else measured where it can be.")
@click.option("--baseline-entry", default=None, help="The baseline entry for --baseline measured (default: the "
                                                     "protocol's).")
@click.option("--gate", default=None, help="Gate of the protocol (ntire2022: final or rules), or 'none'.")
@click.option("--published", "published", multiple=True,
              help=f"Add a packaged published table ({', '.join(PUBLISHED)}); repeatable.")
@click.option("--runtime-stat", type=click.Choice(RUNTIME_STATS), default=None,
              help="Which statistic of the results' runtime_ms is ranked (default: the protocol's: headline, the "
                   "timer's own figure: mean for the ntire timer, median for robust).")
@click.option("--rank-references", is_flag=True, help="Rank the protocol's reference rows like any entry.")
@click.option("--allow-random", is_flag=True, help="Rank entries measured with random weights (by default they are "
                                                   "listed apart as 'random weights', not ranked).")
@click.option("--allow-unsteady", is_flag=True, help="Rank runtimes from quick runs or with a spread above "
                                                     f"{MAX_RUNTIME_SPREAD:g} (IQR/median), with a caveat (by "
                                                     "default their rows are not ranked on runtime).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the leaderboard to a file.")
@one_line_errors(OSError)
def leaderboard(results: tuple[str, ...], protocol: str | None, protocol_file: str | None, track: str | None,
                fmt: str, plot: str | None, baseline: str, baseline_entry: str | None, gate: str | None,
                published: tuple[str, ...], runtime_stat: str | None, rank_references: bool, allow_random: bool,
                allow_unsteady: bool, output: str | None) -> None:
    if protocol_file and protocol:
        raise click.UsageError("give --protocol or --protocol-file, not both")
    proto = load_protocol_file(protocol_file) if protocol_file else load_protocol(protocol or "ntire2022")
    records = [rec for name in published for rec in published_table(name)] + load_results(results)
    if not records:
        raise click.UsageError("nothing to rank: give result files or folders, a CSV, or --published NAME")
    lb = build_leaderboard(records, proto, track, baseline=baseline, baseline_entry=baseline_entry, gate=gate,
                           runtime_stat=runtime_stat, rank_references=rank_references, allow_random=allow_random,
                           allow_unsteady=allow_unsteady)
    for note in lb.notes:
        if note.startswith(WARNING_NOTES) or " refused: " in note:
            echo_err(f"warning: {note}")
    text = render(lb, fmt)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        echo_err(f"wrote {output}")
    else:
        click.echo(text, nl=False)
    if plot:
        front = pareto_plot(lb, plot)
        echo_err(f"wrote {plot} (" + (f"Pareto front: {', '.join(front)}" if front else
                                      "no Pareto front: fewer than two ranked rows") + ")")
