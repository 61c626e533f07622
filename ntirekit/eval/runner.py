"""Running a track over entries: each entry guarded, each record written atomically as soon as it is known.

One failing entry (broken spec, import error, missing weights, crash, out of memory, NaN output) is recorded as
failed with its reason; the others run on and their files are never touched by it, and a failure never replaces a
good record (:func:`ntirekit.core.records.write_record`).

Data faults are the dataset's, never an entry's: before any entry runs, :func:`check_data` opens the dataset (the
track's ``check_data``) and reads the header of every image (:func:`ntirekit.data.identity.describe_data`: decodable
headers, PNG/BMP files whole, LR/HR sizes that pair), and a bad dataset is one :class:`~ntirekit.data.DataError`
with nothing written. Should an entry still fail on a data error (a damaged stream only a full decode finds), the
dataset is decoded once in full here: when that fails too, the run stops with that one error and the entry's
failure is not written; otherwise the failure is the entry's own (a hostile entry cannot stop a run by naming a data
error).

Every record carries the run's ``split``, ``protocol`` and ``dataset``: the dataset's identity by content
(``Set5-3f9a2c1d``, :mod:`ntirekit.data.identity`), which also names its file, so results of two folders named alike
never mix. A record whose weights are the entry's own, made by the kit (``[weights].origin``, e.g. ``trained (50
steps)``), says so in ``weights_origin`` (``weights`` stays ``pretrained``). ``marks`` (e.g. ``{"quick": True}``
for a CPU quick run: ``ntirekit eval``) are added to every record. A
track may yield a ``"partial"`` record of an entry first (a timed track: its counts and memory before the timing),
written at once and replaced by the entry's final record, so an interrupted run keeps it. ``resume=True`` skips
entries whose successful record for this track, dataset, split, protocol and device already exists in the output
folder. Which entries a track takes, its default dataset and its options come from its
:class:`~ntirekit.eval.track.Track` declaration.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import ResultError, read_result, result_key, result_path, write_record
from ntirekit.core.spec import Entry
from ntirekit.data import DataError
from ntirekit.data.identity import describe_data, read_every_image
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
              memory_mb: int | None = None, marks: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate ``entries`` on ``options.track``; write ``OUT/<entry>__<track>__<key>__<device>.json`` for each
    (:func:`ntirekit.core.records.result_path`).

    ``isolate``: True runs every entry's code in the jail, None (default) the untrusted ones only (submissions,
    unpacked zips, ``--entries`` folders: :func:`ntirekit.core.trust.is_untrusted`); untrusted code never runs in this
    process whatever ``isolate`` says. ``timeout_s`` and ``memory_mb`` bound each jail
    (:func:`ntirekit.eval.limits.jail_limits`). ``marks``: fields added to every record. Unknown tracks and options of
    the wrong type are an :class:`~ntirekit.core.errors.OptionError`, a bad dataset a
    :class:`~ntirekit.data.DataError`, before anything runs.
    """
    track = get_track(options.track)
    options = track.resolve(dataclasses.replace(options, isolate=options.isolate if isolate is None else isolate,
                                                timeout_s=timeout_s or options.timeout_s,
                                                memory_mb=memory_mb or options.memory_mb))
    device = fingerprint(resolve_device(options.device))
    stamp = options_record(options)
    identities = check_data(track, options, entries)
    scales = {e.name: _scale(e) for e in entries}
    origins = {e.name: _origin(e) for e in entries if e.name not in options.weights}

    def identity(name: str) -> str | None:
        return identities.get(scales.get(name)) or next(iter(identities.values()), None)  # type: ignore[arg-type]

    records: list[dict[str, Any]] = []
    todo = entries
    if resume and out_dir is not None:
        done = {e.name: existing_ok(Path(out_dir), e, options.track, device, result_key(stamp, identity(e.name)))
                for e in entries}
        records += [r for r in done.values() if r is not None]
        todo = [e for e in entries if done[e.name] is None]
    partial: dict[str, dict[str, Any]] = {}
    for rec in _evaluate(todo, options, track):
        _raise_if_data_fault(rec, track, options, scales)
        rec.setdefault("track", options.track)
        rec.setdefault("options", stamp)
        rec.setdefault("split", options.split)
        rec.setdefault("protocol", options.protocol)
        rec["dataset"] = identity(rec["entry"])
        if rec.get("weights") == "pretrained" and origins.get(rec["entry"]):
            rec.setdefault("weights_origin", origins[rec["entry"]])
        for key, value in (marks or {}).items():
            rec.setdefault(key, value)
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


def _origin(entry: Entry) -> str:
    """What the entry's own weights are when the kit made them (``[weights].origin``: ``trained (50 steps)``)."""
    try:
        return entry.spec.weights.origin if entry.spec.weights is not None else ""
    except Exception:       # a broken spec fails in its own guard later
        return ""


def _scale(entry: Entry) -> int | None:
    try:
        return int(entry.spec.scale)
    except Exception:       # a broken spec fails in its own guard later
        return None


def check_data(track: Track, options: EvalOptions, entries: list[Entry]) -> dict[int, str]:
    """Open the dataset once per scale of ``entries`` (the track's ``check_data``) and read the header of every image
    (:func:`ntirekit.data.identity.describe_data`): a bad ``--data`` raises its one
    :class:`~ntirekit.data.DataError` here, before any entry runs. Returns the dataset's identity per scale."""
    if not entries:
        return {}
    scales = sorted({s for s in map(_scale, entries) if s is not None})
    data = str(options.data)
    identities: dict[int, str] = {}
    for scale in scales:
        if track.check_data is not None:
            track.check_data(data, scale)
        identities[scale] = describe_data(data, scale, options.split, images=track.entries == "esr")
    return identities


def _data_error_names(cls: type = DataError) -> set[str]:
    """The names of :class:`DataError` and its subclasses (``ClipError``, ``VqeDataError``): how a record's error line
    starts when a data error ended the entry (:func:`ntirekit.core.records.error_line`)."""
    return {cls.__name__}.union(*(_data_error_names(sub) for sub in cls.__subclasses__()))


def _raise_if_data_fault(rec: dict[str, Any], track: Track, options: EvalOptions,
                         scales: dict[str, int | None]) -> None:
    """An entry that failed on a data error: decode the whole dataset once; when that fails, the fault is the
    dataset's and its :class:`DataError` ends the run (the entry's record is not written); otherwise the failure is
    the entry's own and is recorded as usual."""
    if rec.get("status") != "failed" or str(rec.get("error", "")).partition(":")[0] not in _data_error_names():
        return
    scale = scales.get(rec.get("entry", "")) or next((s for s in scales.values() if s), 1)
    read_every_image(str(options.data), scale, options.split, images=track.entries == "esr")


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
