"""``ntirekit eval``: run a track over entries, write one JSON per entry, print a table (and the leaderboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click
from tabulate import tabulate

from ntirekit.cli.common import entries_option, load_registry, one_line_errors, parse_shape
from ntirekit.measure.runtime import headline
from ntirekit.runner import run_track
from ntirekit.tracks import TRACKS, EvalOptions, default_entry_track


def _get(*keys: str, scale: float = 1.0, fmt: str = "{:.2f}") -> Callable[[dict[str, Any]], str]:
    def get(rec: dict[str, Any]) -> str:
        value: Any = rec
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return "" if value is None else fmt.format(value / scale if scale != 1.0 else value)
    return get


def _runtime(rec: dict[str, Any]) -> str:
    stats = rec.get("runtime_ms")
    return "" if not stats else f"{headline(stats):.2f} ({stats.get('timer')})"


_PSNR = [("PSNR [dB]", _get("psnr_db", fmt="{:.3f}")), ("SSIM", _get("ssim", fmt="{:.4f}"))]
_COUNTS = [("Params [M]", _get("params", scale=1e6, fmt="{:.4f}")),
           ("FLOPs [G] (2022)", _get("macs_ntire2022", scale=1e9)),
           ("FLOPs [G] (fvcore)", _get("macs_fvcore", scale=1e9, fmt="{:.4f}")),
           ("Acts [M]", _get("activations", scale=1e6)), ("#Conv", _get("convs", fmt="{:d}"))]
_RUNTIME = [("Runtime [ms]", _runtime), ("CV", _get("runtime_ms", "cv", fmt="{:.3f}"))]
_MEMORY = [("Mem [MiB]", _get("max_memory_mib"))]
#: the columns of the closing table, per track
COLUMNS: dict[str, list[tuple[str, Callable[[dict[str, Any]], str]]]] = {
    "psnr": _PSNR,
    "runtime": _RUNTIME + _MEMORY,
    "complexity": _COUNTS,
    "overall": _RUNTIME + _COUNTS + _MEMORY,
    "vqe": [("PSNR [dB]", _get("psnr_db", fmt="{:.3f}")), ("ΔPSNR [dB]", _get("delta_psnr_db", fmt="{:+.3f}")),
            ("ms/frame", _get("runtime_ms_per_frame")), ("Params [M]", _get("params", scale=1e6, fmt="{:.3f}"))],
}


def summary_table(records: list[dict[str, Any]], track: str) -> str:
    """One row per entry: its figures, or its failure reason."""
    columns = COLUMNS[track]
    rows = []
    for rec in records:
        if rec.get("status") == "ok":
            rows.append([rec["entry"], *(get(rec) for _, get in columns), "ok"])
        else:
            rows.append([rec["entry"], *([""] * len(columns)), f"FAILED: {rec.get('error', '')}"])
    return tabulate(rows, headers=["entry", *(h for h, _ in columns), "status"], disable_numparse=True)


def closing_leaderboard(records: list[dict[str, Any]], protocol_name: str, track: str) -> str:
    """The leaderboard of what eval measured: the protocol's track of the same name, else its main track."""
    from ntirekit.rank import LeaderboardError, ProtocolError, load_protocol, render_records

    try:
        protocol = load_protocol(protocol_name)
        board_track = track if track in protocol.tracks else None
        title = f"Leaderboard ({protocol.name}, {board_track or 'main track'}):"
        return title + "\n" + render_records(records, protocol=protocol_name, track=board_track, fmt="table")
    except (ProtocolError, LeaderboardError) as exc:
        return f"no leaderboard: {exc}"


def _video_options(chunk: int | None, overlap: int, keep_duplicates: bool, max_frames: int | None,
                   save_frames: str | None, every_10th: bool = False,
                   extra_data: str | None = None) -> dict[str, Any]:
    """``EvalOptions.extra`` of the vqe track (see :mod:`ntirekit.tracks.vqe`); duplicates are dropped by default."""
    extra: dict[str, Any] = {"chunk": chunk, "overlap": overlap, "frame_step": 10 if every_10th else 1}
    if extra_data is not None:
        extra["extra_data"] = int(extra_data)
    if keep_duplicates:
        extra["drop_duplicates"] = False
    if max_frames is not None:
        extra["frames"] = max_frames
    if save_frames is not None:
        extra["save"] = save_frames
    return extra


def _parse_weights(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise click.BadParameter(f"--weights takes ENTRY=PATH, got {item!r}")
        out[name] = path
    return out


@click.command("eval")
@click.option("--track", type=click.Choice(list(TRACKS)), default="psnr", show_default=True,
              help="What to measure.")
@click.option("--entry", "names", multiple=True, help="Entry name (repeatable). Default: every entry of the track.")
@entries_option
@click.option("--data", default="sample", show_default=True,
              help="Dataset folder (DIV2K, DIV2K_LSDIR, HR/ + LR_bicubic/X4/, HR-only, clips) or 'sample'.")
@click.option("--protocol", type=click.Choice(["challenge", "paper"]), default="challenge", show_default=True,
              help="PSNR protocol: challenge = RGB on rounded output; paper = Y channel.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--tile", type=int, default=None, help="Run on LR tiles of this size (pixels) for large inputs.")
@click.option("--tile-overlap", type=int, default=16, show_default=True, help="Context around each tile (LR px).")
@click.option("--timer", type=click.Choice(["robust", "ntire"]), default="robust", show_default=True,
              help="Runtime timer: robust (warm-up, repeats, median) or ntire (the official loop).")
@click.option("--warmup", type=int, default=3, show_default=True, help="Warm-up runs per entry (robust timer).")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs per input (robust timer).")
@click.option("--runs", type=int, default=1, show_default=True, help="Whole measurement repeated N times.")
@click.option("--input-shape", default="1,3,256,256", show_default=True,
              callback=lambda c, p, v: parse_shape(v),
              help="Input for counting FLOPs/activations/#conv.")
@click.option("--threads", type=int, default=None, help="CPU threads for timing (default: torch's).")
@click.option("--weights", "weights", multiple=True, help="ENTRY=PATH: use this checkpoint (repeatable).")
@click.option("--chunk", type=int, default=None, help="vqe: frames per inference window (default: whole clip).")
@click.option("--overlap", type=int, default=2, show_default=True, help="vqe: frames shared by adjacent windows.")
@click.option("--keep-duplicates", is_flag=True, help="vqe: do not drop repeated frames before enhancement.")
@click.option("--max-frames", type=int, default=None, help="vqe: only the first N frames of each video.")
@click.option("--save-frames", type=click.Path(file_okay=False), default=None,
              help="vqe: write the enhanced frames to DIR/<entry>/<video>/ with DIR/<entry>/readme.txt: the "
                   "vqe-results layout `ntirekit pack` takes.")
@click.option("--every-10th", is_flag=True,
              help="vqe: score (and save) only every 10th frame (010, 020, ...), as the NTIRE 2022 online "
                   "validation server did.")
@click.option("--extra-data", type=click.Choice(["0", "1"]), default=None,
              help="vqe --save-frames: the readme.txt field 'Extra Data [1] / No Extra Data [0]'.")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder for the result JSON files (one per entry).")
@click.option("--resume", is_flag=True, help="Skip entries whose successful result already exists in --out.")
@click.option("--isolate/--no-isolate", default=None,
              help="Run each entry in its own process with limits. Default: only untrusted entries (submissions/, zips).")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Time limit per isolated entry [s].")
@click.option("--memory-mb", type=int, default=None, help="Memory limit per isolated entry [MiB].")
@click.option("--leaderboard", "protocol_name", default="ntire2022", show_default=True,
              help="Ranking protocol of the closing leaderboard (runtime/complexity/overall); 'none' to skip.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@one_line_errors()
def eval_entries(track: str, names: tuple[str, ...], entry_roots: tuple[str, ...], data: str, protocol: str,
                 device: str, tile: int | None, tile_overlap: int, timer: str, warmup: int, repeats: int, runs: int,
                 input_shape: tuple[int, int, int, int], threads: int | None, weights: tuple[str, ...],
                 chunk: int | None, overlap: int, keep_duplicates: bool, max_frames: int | None,
                 save_frames: str | None, every_10th: bool, extra_data: str | None, out: str,
                 resume: bool, isolate: bool | None, timeout_s: float | None, memory_mb: int | None,
                 protocol_name: str, quiet: bool) -> None:
    """Evaluate entries on a track; one JSON per entry in --out, a table at the end.

    \b
    ntirekit eval --track psnr --data sample
    ntirekit eval --track psnr --data ../shared/data/images/Set5 --protocol paper --entry imdn
    ntirekit eval --track runtime
    ntirekit eval --track vqe --data clips/ --entry pqf_basicvsrpp --chunk 20
    ntirekit eval --track vqe --data clips/ --entry X --save-frames out/ --extra-data 1; ntirekit pack out/X
    ntirekit eval --track psnr --entries team07.zip --entry team07_fastsr   (checked, unpacked, run isolated)
    """
    registry = load_registry(entry_roots)
    entries = registry.select(names, track=None if names else default_entry_track(track))
    if not entries:
        raise click.ClickException(f"no entries to evaluate on track {track}")
    options = EvalOptions(track=track, data=data, protocol=protocol, device=device, tile=tile,
                          tile_overlap=tile_overlap, timer=timer, warmup=warmup, repeats=repeats, runs=runs,
                          input_shape=input_shape, threads=threads, weights=_parse_weights(weights),
                          progress=not quiet, extra=_video_options(chunk, overlap, keep_duplicates, max_frames,
                                                                   save_frames, every_10th, extra_data)
                          if track == "vqe" else {})
    records = run_track(entries, options, out_dir=Path(out), resume=resume, isolate=isolate, timeout_s=timeout_s,
                        memory_mb=memory_mb)
    click.echo(summary_table(records, track))
    click.echo(f"\nresults: {Path(out).resolve()}")
    if track in ("runtime", "complexity", "overall") and protocol_name != "none":
        click.echo("\n" + closing_leaderboard(records, protocol_name, track))
    if any(r.get("status") != "ok" for r in records):
        raise SystemExit(1)
