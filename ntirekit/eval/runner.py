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
from ntirekit.eval.isolate import evaluate_isolated, is_untrusted
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
            if k not in ("progress", "device", "weights")}


def run_track(entries: list[Entry], options: EvalOptions, out_dir: str | Path | None = None,
              resume: bool = False, isolate: bool | None = None, timeout_s: float | None = None,
              memory_mb: int | None = None) -> list[dict[str, Any]]:
    """Evaluate ``entries`` on ``options.track``; write ``OUT/<entry>__<track>__<key>__<device>.json`` for each
    (:func:`ntirekit.core.records.result_path`).

    ``isolate``: True runs every entry in its own child process (:func:`ntirekit.eval.isolate.evaluate_isolated`,
    with ``timeout_s`` and ``memory_mb``), False none; None (default) isolates the untrusted ones (submissions,
    unpacked zips: :func:`ntirekit.eval.isolate.is_untrusted`). Unknown tracks and options of the wrong type are an
    :class:`~ntirekit.core.errors.OptionError` before anything runs.
    """
    track = get_track(options.track)
    options = track.resolve(options)
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
    for rec in _evaluate(todo, options, track, isolate, timeout_s, memory_mb):
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


def _evaluate(entries: list[Entry], options: EvalOptions, track: Track, isolate: bool | None,
              timeout_s: float | None, memory_mb: int | None) -> Iterator[dict[str, Any]]:
    """In-process entries through the track, then each isolated entry in its own child process.

    Fair timing: when a timing track would run some entries in process and others isolated (untrusted ones), every
    entry runs isolated, one after the other, so that all of one comparison are timed the same way whatever their
    trust level. Each timed record says how (``timing_arrangement``)."""
    untrusted = [e for e in entries if (is_untrusted(e) if isolate is None else isolate)]
    isolated, local = untrusted, [e for e in entries if e not in untrusted]
    if track.times and isolated and local:
        isolated, local = list(entries), []         # trusted ones in their own (unsandboxed) process
    if local:
        how = "in this process"
        if len(local) > 1:
            how += f" with {len(local) - 1} other entries" + (", interleaved" if options.timer == "robust" else "")
        for rec in track.evaluate(local, options):
            yield _arranged(rec, track, how)
    for entry in isolated:
        rec = evaluate_isolated(entry, options, timeout_s=timeout_s, memory_mb=memory_mb, sandbox=entry in untrusted)
        yield _arranged(rec, track, "own process per entry, one after another")


def _arranged(rec: dict[str, Any], track: Track, how: str) -> dict[str, Any]:
    if track.times and ("runtime_ms" in rec or "runtime_ms_per_frame" in rec):
        rec.setdefault("timing_arrangement", how)
    return rec
