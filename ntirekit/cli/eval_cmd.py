"""``ntirekit eval``: run a track over entries, write one JSON per entry, print a table (and the leaderboard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from ntirekit.cli.common import entries_option, load_registry, one_line_errors, parse_shape, trust_option
from ntirekit.cli.tables import table
from ntirekit.core.device import resolve_device
from ntirekit.core.errors import Terminated
from ntirekit.core.outlock import hold_out_lock
from ntirekit.core.records import SPLIT_RULE, record_path
from ntirekit.eval.runner import check_data, run_track
from ntirekit.eval.track import EvalOptions, Track
from ntirekit.eval.tracks import TRACKS, get_track
from ntirekit.jobs import run_jobs
from ntirekit.jobs.slurm import check_slurm
from ntirekit.jobs.cli import baseline_entry, executor_options
from ntirekit.jobs.executors import ExecutorSettings
from ntirekit.pack.formats import README_SOURCE, parse_readme, render_readme
from ntirekit.rank import LeaderboardError, ProtocolError, load_protocol, render_records

#: the timed tracks whose CPU default is a quick run, and its settings
QUICK_TRACKS = ("runtime", "overall")
QUICK_IMAGES, QUICK_CROP, QUICK_WARMUP, QUICK_REPEATS = 2, 128, 1, 3


def weights_label(rec: dict[str, Any]) -> str:
    """What a record's weights are, in words: ``random``, ``pretrained``, or what the kit made of them
    (``trained (50 steps)``: the entry's ``[weights].origin``, stamped by the runner as ``weights_origin``)."""
    weights = str(rec.get("weights") or "")
    return str(rec.get("weights_origin") or weights) if weights == "pretrained" else weights


def summary_table(records: list[dict[str, Any]], track: str) -> str:
    """One row per entry: its weights (pretrained, what the kit trained, random) and figures, or its failure reason.
    A column no record fills (SSIM without ``--ssim``) is left out."""
    columns = get_track(track).columns
    rows = []
    for rec in records:
        weights = weights_label(rec)
        if rec.get("status") == "ok":
            status = "ok (random weights: not ranked)" if weights == "random" else "ok"
            rows.append([rec["entry"], weights, *(c.cell(rec) for c in columns), status])
        else:
            rows.append([rec["entry"], weights, *([""] * len(columns)), f"FAILED: {rec.get('error', '')}"])
    headers = [scored_header(c.header, records) for c in columns]
    return table(["entry", "weights", *headers, "status"], rows, keep=("entry", "status"))


def scored_header(header: str, records: list[dict[str, Any]]) -> str:
    """A PSNR column's header with the frames it scores when the records score a subset (vqe ``--every-10th``:
    ``PSNR [dB] (every 10th frame)``), so that it never reads like the every-frame figure."""
    steps = {int(r["frame_step"]) for r in records if r.get("status") == "ok" and r.get("frame_step")}
    if "PSNR" not in header or not steps - {1}:
        return header
    if len(steps) > 1:
        return f"{header} (frames scored differ by row)"
    (step,) = steps
    return f"{header} (every {step}{'nd' if step == 2 else 'rd' if step == 3 else 'th'} frame)"


def per_image_table(records: list[dict[str, Any]]) -> str:
    """``eval --per-image``: each image's PSNR (and SSIM when measured), one column per entry, as the official
    ``test_demo.py`` logs them."""
    ok = [r for r in records if r.get("status") == "ok" and isinstance(r.get("images"), list)]
    if not ok:
        return ""
    with_ssim = any(i.get("ssim") is not None for r in ok for i in r["images"])
    names = list(dict.fromkeys(i["name"] for r in ok for i in r["images"]))
    by_entry = {r["entry"]: {i["name"]: i for i in r["images"]} for r in ok}
    headers = ["image", *(f"{e} PSNR [dB]" for e in by_entry), *(f"{e} SSIM" for e in by_entry if with_ssim)]
    rows = []
    for name in names:
        cells = [f"{by_entry[e][name]['psnr_db']:.3f}" if name in by_entry[e] else "" for e in by_entry]
        if with_ssim:
            cells += [f"{by_entry[e][name]['ssim']:.4f}" if by_entry[e].get(name, {}).get("ssim") is not None
                      else "" for e in by_entry]
        rows.append([name, *cells])
    return table(headers, rows, keep=headers)


def with_weights(entries: list[Any], explicit: dict[str, str], track: str) -> list[Any]:
    """``entries`` whose weights are at hand: given with ``--weights``, declared in their ``entry.toml`` and found
    locally or downloadable (a pinned ``url``), or not needed (a ``reference`` method such as bicubic). The others
    are left out with one line saying why (a quality figure of other weights means nothing)."""
    missing: dict[str, str] = {}
    for e in entries:
        w = e.spec.weights
        if e.name in explicit or e.spec.reference or (w is not None and (w.url or e.has_weights())):
            continue
        missing[e.name] = "no weights" if w is None else f"{w.file} not found here"
    if missing:
        reasons = ", ".join(f"{name}: {why}" for name, why in missing.items())
        click.echo(f"left out {len(missing)} entr{'y' if len(missing) == 1 else 'ies'} without weights on the {track} "
                   f"track ({reasons}): --allow-random measures them with random weights", err=True)
    return [e for e in entries if e.name not in missing]


def _data_label(options: EvalOptions, explain: bool = False) -> str:
    split = options.split or ("none (the name says neither valid nor test; --split sets it)" if explain else "none")
    return f"data {options.data} (split: {split}, protocol: {options.protocol})"


def plan_line(options: EvalOptions, entries: list[Any], device: str, quick: bool) -> str:
    """The first line of ``eval``: what it will do, on what, and roughly how long."""
    declared = get_track(options.track)
    if declared.times:
        how_long = ("about 15 s for the ESR baselines on 2 idle cores, minutes on a busy machine" if quick else
                    "counting and memory first, then the timing, whose estimate is printed before it starts")
    else:
        how_long = "one bar per entry with its ETA"
    names = ", ".join(e.name for e in entries[:4]) + (", ..." if len(entries) > 4 else "")
    return (f"eval: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({names}) on track {options.track}, "
            f"{_data_label(options, explain=True)}, device {device}; {how_long}")


def table_title(options: EvalOptions) -> str:
    """The header line of the closing table: the track, data, split and protocol the records hold."""
    return f"{options.track}: {_data_label(options)}"


def closing_leaderboard(records: list[dict[str, Any]], protocol_name: str, track: str) -> str:
    """The leaderboard of what eval measured: the protocol's track of the same name, else its main track."""
    try:
        protocol = load_protocol(protocol_name)
        board_track = track if track in protocol.tracks else None
        title = f"Leaderboard ({protocol.name}, {board_track or 'main track'}):"
        return title + "\n" + render_records(records, protocol=protocol_name, track=board_track, fmt="table")
    except (ProtocolError, LeaderboardError) as exc:
        return f"no leaderboard: {exc}"


def track_option_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """One ``eval`` flag per track option that declares one (:class:`ntirekit.eval.track.TrackOption`), into the
    ``track_options`` dict of the command (None: not given)."""
    seen: set[str] = set()
    for track in reversed(list(TRACKS.values())):
        for option in reversed(track.options):
            if option.flag is None or option.flag in seen:
                continue
            seen.add(option.flag)
            default = "" if option.default is None else f" [default: {option.default}]"
            help_text = f"{track.name}: {option.help}{default}"
            if option.type is bool:
                func = click.option(option.flag, option.name, is_flag=True, default=None,
                                    flag_value=not option.negate, help=help_text)(func)
            else:
                kind = click.Path(file_okay=False) if option.name in ("save", "save_sr") else option.type
                func = click.option(option.flag, option.name, type=kind, default=None, help=help_text)(func)
    return func


def track_extra(track: Track, given: dict[str, Any]) -> dict[str, Any]:
    """The ``EvalOptions.extra`` of ``track`` from the flags given; a flag of another track is an error."""
    mine = {o.name for o in track.options}
    extra: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in mine:
            flag = next(o.flag for t in TRACKS.values() for o in t.options if o.name == name and o.flag)
            raise click.BadParameter(f"{flag} does not apply to the {track.name} track")
        extra[name] = value
    return extra


def quick_settings(extra: dict[str, Any], warmup: int | None, repeats: int | None) -> tuple[dict[str, Any], int, int]:
    """The CPU quick run of a timed track: the first inputs, centre crops, fewer warm-ups and repeats, each only where
    the caller did not say otherwise."""
    extra = {"images": QUICK_IMAGES, "crop": QUICK_CROP, **extra}
    return extra, QUICK_WARMUP if warmup is None else warmup, QUICK_REPEATS if repeats is None else repeats


def _quick_note(extra: dict[str, Any], warmup: int, repeats: int, timer: str,
                input_shape: tuple[int, int, int, int]) -> str:
    runs = f"warm-up {warmup}, {repeats} repeats" if timer == "robust" else "the official loop"
    memory = "no memory estimate" if extra.get("memory") is False else "memory estimated on the same inputs"
    size = f"centre crops of at most {extra['crop']}x{extra['crop']}" if extra.get("crop") else "full size"
    images = f"the first {extra['images']} inputs" if extra.get("images") else "every input"
    return (f"CPU quick run (sized for the ESR baselines: about 15 s on 2 idle cores): {images}, {size}, "
            f"{runs}, {memory}; counts on the full {'x'.join(map(str, input_shape))} input. --full for the "
            f"challenge's measurement.")


def save_vqe_readme(folder: Path, record: dict[str, Any], description: str, extra_data: int | None,
                    record_file: str = "") -> None:
    """``FOLDER/readme.txt`` of the ``vqe-results`` layout beside the frames ``--save-frames`` wrote, from what the
    run measured (runtime per frame, CPU or GPU; extra data only when given), and beside it
    :data:`~ntirekit.pack.formats.README_SOURCE` naming the record (``pack`` then knows the readme was measured)."""
    values: dict[str, Any] = {"runtime_s": record["runtime_ms_per_frame"] / 1000.0,
                              "cpu": 0 if record["device"].get("kind") == "cuda" else 1,
                              "description": " ".join(description.split()) or record["entry"]}
    if extra_data is not None:
        values["extra_data"] = int(extra_data)
    folder.mkdir(parents=True, exist_ok=True)
    text = render_readme(values, "vqe-results")
    (folder / "readme.txt").write_text(text, encoding="utf-8")
    measured, _problems = parse_readme(text, "vqe-results")     # as pack will read it back
    source = {"written_by": "ntirekit eval --save-frames", "record": record_file, "readme": measured}
    (folder / README_SOURCE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


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
              help="What to measure: " + "; ".join(f"{t.name}: {t.description}" for t in TRACKS.values()) + ".")
@click.option("--entry", "names", multiple=True, help="Entry name (repeatable). Default: every entry of the track.")
@entries_option
@click.option("--data", default=None,
              help="Dataset folder (DIV2K, DIV2K_LSDIR, HR/ + LR_bicubic/X4/, HR-only, clips) or 'sample' (the "
                   "embedded photos). Default: the track's own (psnr: sample; runtime/overall: div2k-like).")
@click.option("--split", type=click.Choice(["valid", "test"]), default=None,
              help="Which split --data is (in every record, read by leaderboards; a DIV2K-style root opens it). "
                   f"Default: {SPLIT_RULE}.")
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
@click.option("--full", is_flag=True, help="runtime/overall: the challenge's measurement on any device (all inputs, "
              "full size, warm-up 3, 5 repeats, memory); on the CPU the default is a quick run.")
@click.option("--runs", type=int, default=1, show_default=True, help="Whole measurement repeated N times.")
@click.option("--input-shape", default="1,3,256,256", show_default=True,
              callback=lambda c, p, v: parse_shape(v),
              help="Input for counting FLOPs/activations/#conv.")
@click.option("--threads", type=int, default=None, help="CPU threads for timing (default: torch's).")
@click.option("--weights", "weights", multiple=True, help="ENTRY=PATH: use this checkpoint (repeatable).")
@track_option_flags
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder for the result JSON files (one per entry).")
@click.option("--resume", is_flag=True, help="Skip entries whose successful result already exists in --out.")
@click.option("--wait", is_flag=True, help="When another run is writing into --out, wait for it to finish (default: "
              "say who holds it and exit with status 1; one writer at a time).")
@click.option("--per-image", is_flag=True, help="psnr: also print each image's PSNR (and SSIM) per entry.")
@click.option("--allow-random", is_flag=True,
              help="Quality tracks (psnr, vqe): also measure entries without weights (left out by default: the "
                   "figures of random weights mean nothing).")
@click.option("--isolate/--no-isolate", default=None,
              help="--isolate runs every entry's code in the sandbox (jail), trusted ones too. Untrusted entries "
                   "(submissions/, --entries folders, zips) always run there, whatever this says.")
@trust_option
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Time limit per jail [s] (default: 300 s + 15 s per forward call it makes).")
@click.option("--memory-mb", type=int, default=None,
              help="Memory a jail may add to its start-up footprint [MiB] (default: only the machine share, half "
                   "its memory; everything the jail holds counts: processes, tmpfs, memfd).")
@click.option("--leaderboard", "protocol_name", default="ntire2022", show_default=True,
              help="Ranking protocol of the closing leaderboard (runtime/complexity/overall); 'none' to skip.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@executor_options
@one_line_errors()
def eval_entries(track: str, names: tuple[str, ...], entry_roots: tuple[str, ...], data: str | None,
                 split: str | None, protocol: str,
                 device: str, tile: int | None, tile_overlap: int, timer: str, warmup: int | None,
                 repeats: int | None, full: bool, runs: int,
                 input_shape: tuple[int, int, int, int], threads: int | None, weights: tuple[str, ...], out: str,
                 resume: bool, wait: bool, per_image: bool, isolate: bool | None,
                 timeout_s: float | None, memory_mb: int | None, allow_random: bool,
                 protocol_name: str, quiet: bool, executor: ExecutorSettings | None = None,
                 **track_options: Any) -> None:
    """Evaluate entries on a track; one JSON per entry in --out, a table at the end.

    Each record is written as soon as it is complete, named by entry, track, dataset, split, protocol and device
    (<entry>__<track>__<data>.<split>.<protocol>__<device>.json): other runs are never overwritten, and a failure
    is written beside a good record (...__failed.json), never over it. The dataset is named by its identity (its
    name and a digest of its file list and sizes: Set5-3f9a2c1d), so two folders named alike never mix. A bad
    --data (a missing folder, an image whose header does not decode, LR/HR sizes that do not pair) is one error
    before any entry runs, and nothing is written. One run writes into --out at a time (--wait waits for the
    other). An interrupted runtime/overall run keeps every entry's counts and memory ("partial": true); --resume
    measures those again and skips the complete ones.

    \b
    ntirekit eval --track psnr --data sample
    ntirekit eval --track psnr --data ../shared/data/images/Set5 --protocol paper --entry imdn
    ntirekit eval --track runtime
    ntirekit eval --track vqe --data clips/ --entry pqf_basicvsrpp --chunk 20
    ntirekit eval --track vqe --data clips/ --entry X --save-frames out/ --extra-data 1; ntirekit pack out/X
    ntirekit eval --track psnr --entries team07.zip --entry team07_fastsr   (checked, unpacked, run isolated)
    """
    _eval(track, names, entry_roots, data, split, protocol, device, tile, tile_overlap, timer, warmup, repeats,
          full, runs, input_shape, threads, weights, out, resume, isolate, timeout_s, memory_mb, protocol_name,
          quiet, executor, track_options, allow_random=allow_random, wait=wait, per_image=per_image)


def _eval(track: str, names: tuple[str, ...], entry_roots: tuple[str, ...], data: str | None, split: str | None,
          protocol: str,
          device: str, tile: int | None, tile_overlap: int, timer: str, warmup: int | None, repeats: int | None,
          full: bool, runs: int, input_shape: tuple[int, int, int, int], threads: int | None,
          weights: tuple[str, ...], out: str, resume: bool, isolate: bool | None, timeout_s: float | None,
          memory_mb: int | None, protocol_name: str, quiet: bool, executor: ExecutorSettings | None,
          track_options: dict[str, Any], allow_random: bool = False, wait: bool = False,
          per_image: bool = False) -> None:
    """The body of ``eval`` (see :func:`eval_entries`)."""
    declared = get_track(track)
    if per_image and track != "psnr":
        raise click.BadParameter(f"--per-image applies to the psnr track, not {track}")
    extra = track_extra(declared, track_options)
    registry = load_registry(entry_roots)
    entries = registry.select(names, track=None if names else declared.entries)
    if not names and not declared.needs_weights:      # a reference method has no efficiency to measure
        entries = [e for e in entries if not e.spec.reference]
    if declared.needs_weights and not allow_random:
        entries = with_weights(entries, _parse_weights(weights), track)
    if not entries:
        raise click.ClickException(f"no entries to evaluate on track {track}")
    # jobs (--executor) resolve --device auto on their node: only the device asked for can say "CPU" here
    device_kind = resolve_device(device).type if executor is None else str(device).split(":")[0]
    quick = track in QUICK_TRACKS and not full and device_kind == "cpu"
    if quick:
        extra, warmup, repeats = quick_settings(extra, warmup, repeats)
    options = EvalOptions(track=track, data=data, split=split, protocol=protocol, device=device, tile=tile,
                          tile_overlap=tile_overlap, timer=timer, warmup=3 if warmup is None else warmup,
                          repeats=5 if repeats is None else repeats, runs=runs, input_shape=input_shape,
                          threads=threads, weights=_parse_weights(weights), progress=not quiet, extra=extra)
    resolved = declared.resolve(options)
    check_data(declared, resolved, entries)             # a bad --data: its one line, before anything else
    if not quiet:
        click.echo(plan_line(resolved, entries, device_kind, quick), err=True)
    if quick:
        click.echo(_quick_note(extra, options.warmup, options.repeats, timer, input_shape), err=True)
    if executor is not None and executor.kind == "slurm":
        check_slurm()                                       # before --out is locked (and so made)
    try:
        with hold_out_lock(out, wait=wait, on_wait=lambda line: click.echo(line, err=True)):
            if executor is None:
                records = run_track(entries, options, out_dir=Path(out), resume=resume, isolate=isolate,
                                    timeout_s=timeout_s, memory_mb=memory_mb,
                                    marks={"quick": True} if quick else None)
            else:
                records = run_jobs(entries, options, Path(out), executor,
                                   baseline=baseline_entry(registry, protocol_name),
                                   isolate=isolate, timeout_s=timeout_s, memory_mb=memory_mb)
    except KeyboardInterrupt as exc:
        click.echo(f"Error: interrupted: every record complete so far is kept in {Path(out).resolve()} (a timed "
                   "track's counts and memory as \"partial\": true); the same command with --resume runs what is "
                   "missing", err=True)
        raise SystemExit(exc.exit_code if isinstance(exc, Terminated) else 1) from None
    if track == "vqe" and extra.get("save"):
        for rec in records:
            if rec.get("status") == "ok":
                save_vqe_readme(Path(extra["save"]) / rec["entry"], rec, registry[rec["entry"]].spec.description,
                                extra.get("extra_data"), str(record_path(Path(out), rec)))
    click.echo(table_title(resolved))
    click.echo(summary_table(records, track))
    if per_image:
        click.echo("\n" + per_image_table(records))
    if quick:
        click.echo(f"\nThis was a quick CPU run. For the full challenge measurement: ntirekit eval --track {track} "
                   f"--full (every input at full size, warm-up 3, 5 repeats, memory estimate), or --device cuda on a "
                   f"GPU, where that is the default.")
    click.echo(f"\nresults: {Path(out).resolve()}")
    if declared.leaderboard and protocol_name != "none":
        click.echo("\n" + closing_leaderboard(records, protocol_name, track))
    if any(r.get("status") != "ok" for r in records):
        raise SystemExit(1)
