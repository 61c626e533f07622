"""Running a track over entries: each entry guarded, each record written atomically as soon as it is known.

One failing entry (broken spec, import error, missing weights, crash, out of memory, NaN output) is recorded as
failed with its reason; the others run on and their files are never touched by it, and a failure never replaces a
good record (:func:`ntirekit.core.records.write_record`). A dataset that cannot be opened is one
:class:`~ntirekit.data.DataError` before any entry runs (the track's ``check_data``), and nothing is written. A track
may yield a ``"partial"`` record of an entry first (a timed track: its counts and memory before the timing), written
at once and replaced by the entry's final record, so an interrupted run keeps it. Every record carries the run's
``split`` and ``protocol``. ``resume=True`` skips entries whose successful record for this track, dataset, split,
protocol and device already exists in the output folder. Which entries a track takes,
its default dataset and its options come from its :class:`~ntirekit.eval.track.Track` declaration.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import ResultError, read_result, result_key, result_path, write_record
from ntirekit.core.spec import Entry
from ntirekit.eval.track import EvalOptions, Track
from ntirekit.eval.tracks import get_track


def existing_ok(out_dir: Path, entry: Entry, track: str, device: dict[str, Any], key: str = "") -> dict[str, Any] | None:
    """The already-written successful record of ``entry`` for this track, key (:func:`result_key`) and device."""
    path = result_path(out_dir, entry.name, track, device, key)
    try:
        rec = read_result(path)
    except ResultError:
        return None
    return rec if rec.get("status") == "ok" else None


def options_record(options: EvalOptions) -> dict[str, Any]:
    """The options a record was measured with (so that ``regress`` can measure it again the same way)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()
            if k not in ("progress", "device", "weights", "timeout_s", "memory_mb", "isolate")}


def run_track(entries: list[Entry], options: EvalOptions, out_dir: str | Path | None = None,
              resume: bool = False, isolate: bool | None = None, timeout_s: float | None = None,
              memory_mb: int | None = None) -> list[dict[str, Any]]:
    """Evaluate ``entries`` on ``options.track``; write ``OUT/<entry>__<track>__<key>__<device>.json`` for each
    (:func:`ntirekit.core.records.result_path`).

    ``isolate``: True runs every entry's code in the jail, None (default) the untrusted ones only (submissions,
    unpacked zips, ``--entries`` folders: :func:`ntirekit.core.trust.is_untrusted`); untrusted code never runs in this
    process whatever ``isolate`` says. ``timeout_s`` and ``memory_mb`` bound each jail
    (:func:`ntirekit.eval.limits.jail_limits`). Unknown tracks and options of the wrong type are an
    :class:`~ntirekit.core.errors.OptionError` before anything runs.
    """
    track = get_track(options.track)
    options = track.resolve(dataclasses.replace(options, isolate=options.isolate if isolate is None else isolate,
                                                timeout_s=timeout_s or options.timeout_s,
                                                memory_mb=memory_mb or options.memory_mb))
    device = fingerprint(resolve_device(options.device))
    stamp = options_record(options)
    records: list[dict[str, Any]] = []
    todo = entries
    if resume and out_dir is not None:
        done = {e.name: existing_ok(Path(out_dir), e, options.track, device, result_key(stamp)) for e in entries}
        records += [r for r in done.values() if r is not None]
        todo = [e for e in entries if done[e.name] is None]
    check_data(track, options, todo)
    partial: dict[str, dict[str, Any]] = {}
    for rec in _evaluate(todo, options, track):
        rec.setdefault("track", options.track)
        rec.setdefault("options", stamp)
        rec.setdefault("split", options.split)
        rec.setdefault("protocol", options.protocol)
        if out_dir is not None:
            write_record(out_dir, rec)
        if rec.get("status") == "partial":
            partial[rec["entry"]] = rec
        else:
            partial.pop(rec["entry"], None)
            records.append(rec)
    records += partial.values()
    order = {e.name: i for i, e in enumerate(entries)}
    return sorted(records, key=lambda r: order.get(r["entry"], len(order)))


def check_data(track: Track, options: EvalOptions, entries: list[Entry]) -> None:
    """Open the dataset once per scale of ``entries`` (the track's ``check_data``): a bad ``--data`` raises its one
    :class:`~ntirekit.data.DataError` here, before any entry runs."""
    if track.check_data is None or not entries:
        return
    scales = set()
    for entry in entries:
        try:
            scales.add(int(entry.spec.scale))
        except Exception:       # a broken spec fails in its own guard later
            continue
    for scale in sorted(scales):
        track.check_data(str(options.data), scale)


def _evaluate(entries: list[Entry], options: EvalOptions, track: Track) -> Iterator[dict[str, Any]]:
    """Every entry through the track, which runs an untrusted entry's code in the jail only (the door,
    :func:`ntirekit.core.trust.check_runnable`, keeps it out of this process whatever a track does). A timed record
    says how it was timed (``timing_arrangement``)."""
    others = len(entries) - 1
    for rec in track.evaluate(entries, options):
        if track.times and ("runtime_ms" in rec or "runtime_ms_per_frame" in rec):
            how = "exported graph timed in this process" if rec.get("measured") == "graph" else \
                "eager module timed in this process (trusted)"
            if others > 0 and "runtime_ms" in rec:
                how += f" with {others} other entries" + (", interleaved" if options.timer == "robust" else "")
            rec.setdefault("timing_arrangement", how)
        yield rec
