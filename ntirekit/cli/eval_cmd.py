"""``ntirekit eval``: run a track over entries, write one JSON per entry, print a table (and the leaderboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click
from tabulate import tabulate

from ntirekit.cli.common import entries_option, load_registry, one_line_errors, parse_shape
from ntirekit.jobs.cli import baseline_entry, executor_options
from ntirekit.jobs.executors import ExecutorSettings
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
                   save_frames: str | None) -> dict[str, Any]:
    """``EvalOptions.extra`` of the vqe track (see :mod:`ntirekit.tracks.vqe`); duplicates are dropped by default."""
    extra: dict[str, Any] = {"chunk": chunk, "overlap": overlap}
    if keep_duplicates:
        extra["drop_duplicates"] = False
    if max_frames is not None:
        extra["frames"] = max_frames
    if save_frames is not None:
        extra["save"] = save_frames
    return extra


def _track_options(track: str, chunk: int | None, overlap: int, keep_duplicates: bool, max_frames: int | None,
                   save_frames: str | None, with_ssim: bool, save_sr: str | None) -> dict[str, Any]:
    """``EvalOptions.extra`` of the track: the vqe options, the psnr track's ``ssim``/``save_sr``."""
    if track == "vqe":
        return _video_options(chunk, overlap, keep_duplicates, max_frames, save_frames)
    if track == "psnr":
        return {"ssim": with_ssim, **({"save_sr": save_sr} if save_sr else {})}
    if with_ssim or save_sr:
        raise click.BadParameter("--ssim and --save-sr belong to --track psnr")
    return {}


#: the timed tracks whose CPU default is a quick run, and its settings
QUICK_TRACKS = ("runtime", "overall")
QUICK_IMAGES, QUICK_CROP, QUICK_WARMUP, QUICK_REPEATS = 2, 128, 1, 3


def _is_cpu(device: str) -> bool:
    from ntirekit.measure.device import resolve_device

    return resolve_device(device).type == "cpu"


def _efficiency_options(track: str, quick: bool, n_images: int | None, crop: int | None, memory: bool | None,
                        cross_check: bool) -> dict[str, Any]:
    """``EvalOptions.extra`` of the efficiency tracks (see :mod:`ntirekit.tracks.efficiency`)."""
    extra: dict[str, Any] = {"cross_check": cross_check}
    if quick:
        n_images = QUICK_IMAGES if n_images is None else n_images
        crop = QUICK_CROP if crop is None else crop
    if track != "complexity":
        extra.update(images=n_images, crop=crop)
        if memory is not None:
            extra["memory"] = memory
    elif n_images or crop or memory:
        raise click.BadParameter("--images, --crop and --memory belong to --track runtime|overall")
    return extra


def _quick_note(extra: dict[str, Any], warmup: int, repeats: int, timer: str,
                input_shape: tuple[int, int, int, int]) -> str:
    runs = f"warm-up {warmup}, {repeats} repeats" if timer == "robust" else "the official loop"
    memory = "no memory estimate" if extra.get("memory") is False else "memory estimated on the same inputs"
    size = f"centre crops of at most {extra['crop']}x{extra['crop']}" if extra.get("crop") else "full size"
    images = f"the first {extra['images']} inputs" if extra.get("images") else "every input"
    return (f"CPU quick run (sized for the ESR baselines in about 3 minutes on 2 idle cores): {images}, {size}, "
            f"{runs}, {memory}; counts on the full {'x'.join(map(str, input_shape))} input. --full for the "
            f"challenge's measurement.")


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
@click.option("--warmup", type=int, default=None, help="Warm-up runs per entry (robust timer). Default: 3 (CPU quick "
              "run: 1).")
@click.option("--repeats", type=int, default=None, help="Timed runs per input (robust timer). Default: 5 (CPU quick "
              "run: 3).")
@click.option("--images", "n_images", type=int, default=None,
              help="runtime/overall: time on the first N inputs only. Default: all (CPU quick run: 2).")
@click.option("--crop", type=int, default=None,
              help="runtime/overall: centre-crop each LR input to at most NxN. Default: none (CPU quick run: 128).")
@click.option("--full", is_flag=True, help="runtime/overall: the challenge's measurement on any device (all inputs, "
              "full size, warm-up 3, 5 repeats, memory); on the CPU the default is a quick run.")
@click.option("--memory/--no-memory", default=None,
              help="runtime/overall: peak memory on the timing inputs (CUDA: max_memory_allocated; CPU: an "
                   "estimate, one tracked forward per input). Default: on.")
@click.option("--cross-check", is_flag=True, help="Also count with torch's FlopCounterMode and compare with fvcore "
              "per operator (warnings in the record).")
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
              help="vqe: write the enhanced frames to DIR/<entry>/<video>/.")
@click.option("--ssim", "with_ssim", is_flag=True, help="psnr: also SSIM (on the device; off by default, as in the "
              "official harness).")
@click.option("--save-sr", type=click.Path(file_okay=False), default=None,
              help="psnr: write the SR images to DIR/<entry>/<HR name>.png (for `ntirekit pack --format esr-results`).")
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
@executor_options
@one_line_errors()
def eval_entries(track: str, names: tuple[str, ...], entry_roots: tuple[str, ...], data: str, protocol: str,
                 device: str, tile: int | None, tile_overlap: int, timer: str, warmup: int | None,
                 repeats: int | None, n_images: int | None, crop: int | None, full: bool, memory: bool | None,
                 cross_check: bool, runs: int,
                 input_shape: tuple[int, int, int, int], threads: int | None, weights: tuple[str, ...],
                 chunk: int | None, overlap: int, keep_duplicates: bool, max_frames: int | None,
                 save_frames: str | None, with_ssim: bool, save_sr: str | None, out: str,
                 resume: bool, isolate: bool | None, timeout_s: float | None, memory_mb: int | None,
                 protocol_name: str, quiet: bool, executor: ExecutorSettings | None = None) -> None:
    """Evaluate entries on a track; one JSON per entry in --out, a table at the end.

    \b
    ntirekit eval --track psnr --data sample
    ntirekit eval --track psnr --data DIV2K --entry rlfn_ntire --save-sr sr/   (then: ntirekit pack sr/rlfn_ntire)
    ntirekit eval --track psnr --data ../shared/data/images/Set5 --protocol paper --entry imdn
    ntirekit eval --track runtime
    ntirekit eval --track vqe --data clips/ --entry pqf_basicvsrpp --chunk 20
    ntirekit eval --track psnr --entries team07.zip --entry team07_fastsr   (checked, unpacked, run isolated)
    ntirekit eval --track overall --runs 5 --executor slurm --partition gpu --time-limit 60   (docs/scale.md)
    """
    registry = load_registry(entry_roots)
    entries = registry.select(names, track=None if names else default_entry_track(track))
    if not entries:
        raise click.ClickException(f"no entries to evaluate on track {track}")
    extra = _track_options(track, chunk, overlap, keep_duplicates, max_frames, save_frames, with_ssim, save_sr)
    quick = track in QUICK_TRACKS and not full and _is_cpu(device)
    if track in ("runtime", "complexity", "overall"):
        extra.update(_efficiency_options(track, quick, n_images, crop, memory, cross_check))
    if quick:
        warmup = QUICK_WARMUP if warmup is None else warmup
        repeats = QUICK_REPEATS if repeats is None else repeats
        click.echo(_quick_note(extra, warmup, repeats, timer, input_shape), err=True)
    options = EvalOptions(track=track, data=data, protocol=protocol, device=device, tile=tile,
                          tile_overlap=tile_overlap, timer=timer, warmup=3 if warmup is None else warmup,
                          repeats=5 if repeats is None else repeats, runs=runs, input_shape=input_shape,
                          threads=threads, weights=_parse_weights(weights), progress=not quiet, extra=extra)
    if executor is None:
        records = run_track(entries, options, out_dir=Path(out), resume=resume, isolate=isolate,
                            timeout_s=timeout_s, memory_mb=memory_mb)
    else:
        from ntirekit.jobs import run_jobs

        records = run_jobs(entries, options, Path(out), executor, baseline=baseline_entry(registry, protocol_name),
                           isolate=isolate, timeout_s=timeout_s, memory_mb=memory_mb)
    click.echo(summary_table(records, track))
    if quick:
        click.echo(f"\nThis was a quick CPU run. For the full challenge measurement: ntirekit eval --track {track} "
                   f"--full (every input at full size, warm-up 3, 5 repeats, memory estimate), or --device cuda on a "
                   f"GPU, where that is the default.")
    click.echo(f"\nresults: {Path(out).resolve()}")
    if track in ("runtime", "complexity", "overall") and protocol_name != "none":
        click.echo("\n" + closing_leaderboard(records, protocol_name, track))
    if any(r.get("status") != "ok" for r in records):
        raise SystemExit(1)
