"""Build a leaderboard: records -> rows (runs merged) -> gates -> ranks under one protocol track.

Rows
    Records of one entry (and one source: ``measured`` or ``published``) are merged: machine-independent metrics (PSNR,
    params, FLOPs, activations, #conv) over all its records, machine-dependent ones (runtime, memory) per device
    (fingerprints compared with :func:`ntirekit.core.device.comparable`). So one file per track of the same entry
    makes one row, and an entry measured on two devices makes two rows. Several values of one metric (several runs)
    are averaged, as the organisers average runs; their spread (sample standard deviation, min, max) is kept.
Devices
    Runtime or memory measured on devices that do not compare is refused, unless ``baseline="measured"``: then each
    row's runtime and memory are taken relative to the baseline entry measured on the same device (rank-sum
    protocols rank the ratios; score protocols use the measured baseline as ``X_baseline``).
Baseline (score tracks)
    ``baseline="auto"`` (the default) scores against the protocol's published constants when the runtimes were
    measured on the device they were published on (or the records do not say where), and switches to the measured
    baseline when they were measured elsewhere (a CPU, another GPU) and the baseline entry was measured on each such
    device: the leaderboard's first note says so (``BASELINE MEASURED: ...``). ``"published"`` always uses the
    constants. A score that overflows (``exp(2 * X / X_baseline)`` beyond the largest float: a CPU runtime of seconds
    against a GPU baseline of milliseconds) is refused: the row is not ranked, and one note names every such row.
Runtimes that cannot rank
    A runtime from a quick run, or whose spread is above :data:`ntirekit.rank.timing.MAX_RUNTIME_SPREAD`
    (:func:`ntirekit.rank.timing.runtime_caveat`), cannot rank: on a track that ranks runtime the row is not ranked
    (``allow_unsteady`` ranks it, with the caveat); on any track its ``runtime_caveat`` says why, and the leaderboard's
    first note (``RUNTIMES CANNOT RANK: ...``) states the rule.
Status
    ``ranked``; ``reference`` (the protocol's reference entries: shown, never ranked); ``not ranked`` with the reason
    (a failed record, a missing metric, a refused value, a PSNR gate); ``random weights`` (a record of the row was
    measured with randomly initialised weights: listed apart and not ranked unless ``allow_random``). A runtime
    that cannot rank, a refused value or an overflowing score make a row ``not ranked`` with the reason.
Weights
    Every row carries ``weights``: ``pretrained`` or ``random`` as the records say (``random`` when any record of the
    row says so), ``published`` for published rows, None when the records do not say.
Refused values
    A runtime, params or FLOPs figure that is not a positive finite number (negative, zero, NaN, infinite) is refused:
    the row is not ranked, and the leaderboard carries one note per refused value.
Gates
    A gate on a metric that no row has cannot be applied: the leaderboard says so in its first note, lists the metric
    in ``ungated`` and marks every ranked row ``ungated`` (for example a runtime-only ``eval``, or PSNR measured on a
    dataset whose name says neither valid nor test). ``gate="none"`` ranks without a gate.
Ranks
    Per-metric competition ranks on unrounded values (ties share the best rank, the next is skipped: 1, 1, 3); the
    rank-sum or the score is ranked the same way.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ntirekit.core.device import comparable
from ntirekit.core.errors import NtirekitError
from ntirekit.core.records import SPLIT_RULE, record_dataset
from ntirekit.rank.metrics import METRICS, extract, psnr_split, refused, runtime_runs, runtime_timer
from ntirekit.rank.protocol import GateSet, Protocol, Track, load_protocol
from ntirekit.rank.ranking import competition_ranks, score
from ntirekit.rank.timing import RULE, runtime_caveat

BASELINE_MODES = ("auto", "published", "measured")
#: the first words of the leaderboard notes a command line prints as warnings
WARNING_NOTES = ("GATE NOT APPLIED", "GATE PARTLY APPLIED", "BASELINE MEASURED", "RUNTIMES CANNOT RANK",
                 "SCORE REFUSED")
RANKED, REFERENCE, NOT_RANKED, RANDOM = "ranked", "reference", "not ranked", "random weights"
#: statuses in the order rows are listed
STATUSES = (RANKED, REFERENCE, NOT_RANKED, RANDOM)


class LeaderboardError(NtirekitError, ValueError):
    """Results that cannot be ranked as asked; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class Stat:
    """One metric of one row: the values of its runs and their mean (the figure that is ranked)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def scaled(self, factor: float) -> "Stat":
        return Stat(tuple(v * factor for v in self.values))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.mean, "n": self.n}
        if self.n > 1:
            out.update(std=self.std, min=min(self.values), max=max(self.values), runs=list(self.values))
        return out


@dataclass
class Row:
    entry: str
    source: str                             # measured | published
    device: tuple[Mapping[str, Any], str | None] | None  # (fingerprint, timer) of its runtime/memory (None: neither)
    stats: dict[str, Stat]                  # as measured, table units
    errors: list[str] = field(default_factory=list)   # failed records of this entry
    files: list[str] = field(default_factory=list)
    weights: str | None = None              # pretrained | random | published | None (not said)
    refused: dict[str, Any] = field(default_factory=dict)   # metric -> value refused (not positive finite)
    runtime_caveat: str = ""                # why its runtime cannot rank (rank.timing), "" when it can
    label: str = ""
    device_label: str = ""
    values: dict[str, Stat] = field(default_factory=dict)   # as ranked (device-bound metrics may be ratios)
    baseline: dict[str, float] = field(default_factory=dict)  # score: X_baseline per weighted metric
    status: str = RANKED
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)
    total: float | None = None              # rank-sum or score
    rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank, "entry": self.entry, "label": self.label, "status": self.status, "weights": self.weights,
            "reason": self.reason or None, "source": self.source, "device": self.device_label or None,
            "metrics": {m: {**s.to_dict(), "rank": self.ranks.get(m)} for m, s in self.values.items()},
            "measured": {m: s.to_dict() for m, s in self.stats.items()} if self.values != self.stats else None,
            "total": self.total, "runtime_caveat": self.runtime_caveat or None, "notes": self.notes,
            "files": self.files,
        }


@dataclass
class Leaderboard:
    protocol: Protocol
    track: Track
    rows: list[Row]                         # ranked (by rank), then reference, then not ranked
    columns: list[str]                      # metrics shown, in order
    gate: GateSet | None
    baseline_mode: str
    baseline_entry: str | None
    normalised: tuple[str, ...] = ()        # metrics shown and ranked as ratios to the baseline on the same device
    notes: list[str] = field(default_factory=list)
    ungated: tuple[str, ...] = ()           # gate metrics no row has: the gate could not be applied on them
    allow_random: bool = False              # rows measured with random weights are ranked
    allow_unsteady: bool = False            # rows whose runtime cannot rank are ranked (with the caveat)
    conditions: dict[str, list[str]] = field(default_factory=dict)  # psnr data, runtime inputs, timers, devices

    @property
    def total_heading(self) -> str | None:
        """``Score``, ``Rank-sum`` or None (a one-metric rank-sum track needs no total column)."""
        if self.track.method == "score":
            return "Score"
        return "Rank-sum" if len(self.track.metrics) > 1 else None

    def heading(self, metric: str) -> str:
        m = METRICS[metric]
        if metric in self.normalised:
            return f"{m.label} [× {self.baseline_entry}]"
        return m.heading

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol.name, "title": self.protocol.title, "track": self.track.name,
            "method": self.track.method, "rule": self.track.describe(), "metrics": list(self.track.metrics),
            "gate": None if self.gate is None else {
                "name": self.gate.name, "description": self.gate.description,
                "rules": [{"metric": g.metric, "min": g.min, "max": g.max} for g in self.gate.gates]},
            "baseline": {"mode": self.baseline_mode, "entry": self.baseline_entry,
                         "published": dict(self.protocol.baseline) or None,
                         "device": self.protocol.baseline_device or None},
            "normalised": list(self.normalised), "columns": self.columns, "ungated": list(self.ungated),
            "allow_random": self.allow_random, "allow_unsteady": self.allow_unsteady, "conditions": self.conditions,
            "rows": [r.to_dict() for r in self.rows], "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------------ merging


def device_label(fp: Mapping[str, Any] | None) -> str:
    if not fp:
        return "unknown device"
    if fp.get("kind") == "published":
        return f"published ({fp.get('gpu')})"
    name = fp.get("gpu") or fp.get("cpu") or fp.get("device") or "unknown device"
    if fp.get("kind") == "cpu" and fp.get("threads"):
        name = f"{name}, {fp['threads']} threads"
    return name if fp.get("precision", "fp32") == "fp32" else f"{name}, {fp['precision']}"


class _Devices:
    """Where machine-dependent figures come from: classes of comparable fingerprints (and the same runtime timer), each
    with a representative and a label."""

    def __init__(self) -> None:
        self.members: list[tuple[Mapping[str, Any], str | None]] = []

    def find(self, fp: Mapping[str, Any], timer: str | None) -> tuple[Mapping[str, Any], str | None]:
        for member in self.members:
            if member[1] == timer and comparable(member[0], fp):
                return member
        self.members.append((fp, timer))
        return self.members[-1]

    def labels(self) -> dict[int, str]:
        timers = {timer for _, timer in self.members}
        out: dict[int, str] = {}
        for member in self.members:
            fp, timer = member
            label = device_label(fp) + (f", {timer or 'unknown'} timer" if len(timers) > 1 else "")
            taken = sum(1 for v in out.values() if v == label or v.startswith(label + " #"))
            out[id(member)] = label if not taken else f"{label} #{taken + 1}"
        return out


def merge_records(records: Iterable[Mapping[str, Any]], flops_field: str, runtime_stat: str) -> list[Row]:
    """One row per entry × source × device of its machine-dependent figures, runs averaged (see module doc)."""
    devices = _Devices()
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping) or not rec.get("entry"):
            where = rec.get("file", f"record {i + 1}") if isinstance(rec, Mapping) else f"record {i + 1}"
            raise LeaderboardError(f"{where}: not a result record (no 'entry')")
        groups.setdefault((str(rec["entry"]), str(rec.get("source", "measured"))), []).append(rec)

    rows: list[Row] = []
    for (entry, source), recs in groups.items():
        free: dict[str, list[float]] = {}
        bound: dict[int, tuple[Any, dict[str, list[float]]]] = {}
        caveats: dict[int, str] = {}
        errors: list[str] = []
        bad: dict[str, Any] = {}
        for rec in recs:
            if rec.get("status", "ok") != "ok":
                errors.append(str(rec.get("error") or rec.get("status")))
                continue
            rejected = refused(rec, flops_field, runtime_stat)
            bad.update(rejected)
            values = {m: [v] for m, v in extract(rec, flops_field, runtime_stat).items() if m not in rejected}
            fp = rec.get("device") if isinstance(rec.get("device"), Mapping) else {}
            # a device class only for the machine-dependent figures (a PSNR's device and timer say nothing)
            member = devices.find(fp, runtime_timer(rec)) if any(METRICS[m].device_bound for m in values) else None
            if "runtime_ms" in values:
                values["runtime_ms"] = runtime_runs(rec, runtime_stat) or values["runtime_ms"]
                caveat = runtime_caveat(rec)
                if caveat and not caveats.get(id(member)):
                    caveats[id(member)] = caveat
            for metric, vs in values.items():
                if METRICS[metric].device_bound:
                    bound.setdefault(id(member), (member, {}))[1].setdefault(metric, []).extend(vs)
                else:
                    free.setdefault(metric, []).extend(vs)
        files = [str(r["file"]) for r in recs if r.get("file")]
        said = {str(r["weights"]) for r in recs if r.get("status", "ok") == "ok" and r.get("weights")}
        weights = "random" if "random" in said else (
            next(iter(sorted(said)), None) if said else ("published" if source == "published" else None))
        shared = {m: Stat(tuple(v)) for m, v in free.items()}
        for member, metrics in list(bound.values()) or [(None, {})]:
            stats = {**shared, **{m: Stat(tuple(v)) for m, v in metrics.items()}}
            caveat = caveats.get(id(member), "") if member is not None else ""
            rows.append(Row(entry, source, member, stats, list(errors), files, weights, dict(bad), caveat))

    labels = devices.labels()
    names = [r.entry for r in rows]
    for row in rows:
        row.device_label = labels[id(row.device)] if row.device is not None else ""
        row.label = row.entry
        if names.count(row.entry) > 1:
            row.label = f"{row.entry} [{row.device_label or row.source}]"
    return rows


# ------------------------------------------------------------------------------------------------------ ranking


def _device_bound(metrics: Iterable[str]) -> list[str]:
    return [m for m in metrics if METRICS[m].device_bound]


def _check_devices(rows: list[Row], metrics: list[str], baseline_entry: str | None) -> None:
    """Rows carrying ``metrics`` must share one device class; else a one-line error saying what to do."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if any(m in row.stats for m in metrics):
            groups.setdefault(row.device_label, []).append(row.label)
    if len(groups) > 1:
        listing = "; ".join(f"{dev}: {', '.join(names)}" for dev, names in groups.items())
        fix = (f"or use --baseline measured to take them relative to {baseline_entry!r} measured on each device"
               if baseline_entry else "or name a baseline entry measured on each device and use --baseline measured")
        raise LeaderboardError(f"{' and '.join(metrics)} measured on {len(groups)} devices that do not compare "
                               f"({listing}): rank one device at a time, {fix}")


def _check_datasets(records: list[Any], flops_field: str, runtime_stat: str) -> None:
    """Measured PSNR of one split must come from one dataset identity (``Set5-3f9a2c1d``: name + content digest,
    :func:`ntirekit.core.records.record_dataset`): two folders named alike are never ranked together."""
    for metric in ("psnr_val", "psnr_test"):
        by: dict[str, list[str]] = {}
        for rec in records:
            if isinstance(rec, Mapping) and rec.get("status", "ok") == "ok" and rec.get("source") != "published" \
                    and metric in extract(rec, flops_field, runtime_stat) and record_dataset(rec):
                by.setdefault(str(record_dataset(rec)), []).append(str(rec.get("entry")))
        if len(by) > 1:
            listing = "; ".join(f"{d}: {', '.join(sorted(set(e)))}" for d, e in by.items())
            raise LeaderboardError(f"{metric} measured on {len(by)} different datasets ({listing}): rank one dataset "
                                   "at a time (give only its result files)")


def _baselines(rows: list[Row], entry: str | None, protocol: Protocol) -> dict[tuple[str, int], Row]:
    """The baseline entry's rows, by (source, device class)."""
    if not entry:
        raise LeaderboardError(f"--baseline measured needs a baseline entry: protocol {protocol.name!r} names none "
                               "(give --baseline-entry NAME)")
    found = {(r.source, id(r.device)): r for r in rows if r.entry == entry}
    if not found:
        raise LeaderboardError(f"--baseline measured: the baseline entry {entry!r} is not among the results "
                               "(measure it in the same run, or give --baseline-entry NAME)")
    return found


def _apply_baseline(rows: list[Row], track: Track, protocol: Protocol, mode: str,
                    entry: str | None) -> tuple[str, ...]:
    """Fill ``row.values`` (and ``row.baseline`` for score tracks); returns the metrics shown as ratios.

    ``published``: values as measured; score constants from the protocol. ``measured``: machine-dependent metrics
    become ratios to the baseline entry on the same device (so a score's ``X_baseline`` for them is 1), the others'
    score constants come from the baseline entry's row."""
    for row in rows:
        row.values = dict(row.stats)
    if mode == "published":
        if track.method == "score":
            missing = [m for m in track.metrics if m not in protocol.baseline]
            if missing:
                raise LeaderboardError(f"protocol {protocol.name!r} publishes no baseline {missing[0]} "
                                       "(use --baseline measured)")
            for row in rows:
                row.baseline = {m: protocol.baseline[m] for m in track.metrics}
        return ()

    bases = _baselines(rows, entry, protocol)
    by_source = {source: row for (source, _), row in bases.items()}
    normalised: set[str] = set()
    for row in rows:
        same_device = bases.get((row.source, id(row.device)))
        for metric in [m for m in row.values if METRICS[m].device_bound]:
            base = same_device.stats.get(metric) if same_device else None
            del row.values[metric]
            if base is not None and base.mean > 0:
                row.values[metric] = row.stats[metric].scaled(1.0 / base.mean)
                normalised.add(metric)
        if track.method == "score":
            free = by_source.get(row.source) or next(iter(bases.values()))
            for metric in track.metrics:
                if METRICS[metric].device_bound:
                    row.baseline[metric] = 1.0
                elif metric in free.stats:
                    row.baseline[metric] = free.stats[metric].mean
    return tuple(m for m in METRICS if m in normalised)


def _missing_reason(row: Row, metrics: Iterable[str], mode: str, entry: str | None) -> str:
    missing = [m for m in metrics if m not in row.values]
    if not missing:
        return ""
    if row.errors:
        return f"failed: {row.errors[0]}"
    if mode == "measured" and any(m in row.stats for m in missing):
        return f"no {entry} {', '.join(m for m in missing if m in row.stats)} on {row.device_label} to normalise by"
    return "no " + ", ".join(missing)


def _norm(text: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text or "").lower())


def on_published_device(fp: Mapping[str, Any], protocol: Protocol) -> bool | None:
    """Whether the fingerprint ``fp`` is the device the protocol's baseline constants were published on (its name,
    e.g. ``RTX 3090``, within the GPU's name); None where either does not say (no ``baseline.device``, a published
    row, a record without a fingerprint)."""
    kind = fp.get("kind")
    if not protocol.baseline_device or kind not in ("cpu", "cuda"):
        return None
    return kind == "cuda" and _norm(protocol.baseline_device) in _norm(fp.get("gpu"))


def _resolve_baseline(rows: list[Row], track: Track, protocol: Protocol, mode: str,
                      entry: str | None) -> tuple[str, str]:
    """The baseline mode ``auto`` stands for on these rows, and the note saying why when it is ``measured``."""
    if mode != "auto":
        return mode, ""
    bound = _device_bound(track.metrics)
    if track.method != "score" or not bound:
        return "published", ""
    timed = [r for r in rows if r.source != "published" and r.device is not None and any(m in r.stats for m in bound)]
    elsewhere = {id(r.device): r.device_label for r in timed if on_published_device(r.device[0], protocol) is False}
    based = {id(r.device) for r in timed if r.entry == entry}
    if not elsewhere or not entry or not {id(r.device) for r in timed} <= based:
        return "published", ""
    return "measured", (f"BASELINE MEASURED: {', '.join(bound)} measured on {'; '.join(sorted(set(elsewhere.values())))}, "
                        f"not on the {protocol.baseline_device} that {protocol.name}'s constants were published on, so "
                        f"scores use {entry} as measured on the same device (--baseline published keeps the "
                        "published constants)")


def _overflow(row: Row, track: Track, protocol: Protocol, mode: str, entry: str | None) -> str:
    """The reason a row's score overflows: its metric furthest above the baseline, and what to do."""
    metric = max(track.metrics, key=lambda m: row.values[m].mean / row.baseline[m])
    ratio = row.values[metric].mean / row.baseline[metric]
    if mode == "published":
        on = f" published on {protocol.baseline_device}" if protocol.baseline_device else " as published"
        return (f"score overflows: {metric} {ratio:,.0f}x the baseline's{on} (--baseline measured scores against "
                f"{entry or 'the baseline entry'} timed on the same device)")
    return f"score overflows: {metric} {ratio:,.0f}x {entry}'s on the same device"


def _dataset_name(record: Mapping[str, Any]) -> str:
    dataset = record.get("dataset")
    name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    return str(name or "unnamed data")


def conditions(records: Iterable[Mapping[str, Any]], rows: list[Row]) -> dict[str, list[str]]:
    """What the figures were measured on: ``psnr`` (dataset, split, protocol), ``runtime`` (the timing inputs),
    ``timer`` and ``device`` (each list in order of first appearance, empty where no record says)."""
    psnr: list[str] = []
    runtime: list[str] = []
    timers: list[str] = []
    for rec in records:
        if not isinstance(rec, Mapping) or rec.get("status", "ok") != "ok" or rec.get("source") == "published":
            continue
        if rec.get("psnr_db") is not None:
            said = [s for s in (psnr_split(rec), rec.get("protocol")) if s]
            psnr.append(_dataset_name(rec) + (f" ({', '.join(map(str, said))})" if said else ""))
        if isinstance(rec.get("runtime_ms"), Mapping):
            runtime.append(str(rec.get("runtime_input") or "inputs not said"))
            timer = runtime_timer(rec) or "unknown"
            timers.append(f"{timer} timer ({'mean' if timer == 'ntire' else 'median'})")
    devices = [r.device_label for r in rows if r.device_label]
    return {key: list(dict.fromkeys(values)) for key, values in
            (("psnr", psnr), ("runtime", runtime), ("timer", timers), ("device", devices))}


def graph_mismatches(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Entries whose successful records name different graphs (``graph_id``: the exported network's computation on
    the counting input, :mod:`ntirekit.graph.identity`), with the reason they are not ranked: the network whose
    outputs were scored must be the one that was timed and counted. Records without ``graph_id`` (trusted entries
    measured in process) constrain nothing."""
    ids: dict[str, dict[str, str]] = {}
    for rec in records:
        if isinstance(rec, Mapping) and rec.get("status", "ok") == "ok" and rec.get("graph_id"):
            ids.setdefault(str(rec.get("entry")), {})[str(rec["graph_id"])] = str(rec.get("track") or "?")
    return {entry: "its records name different networks (graph_id of " +
                   ", ".join(f"{track} {gid[:12]}" for gid, track in found.items()) +
                   "): the timed and counted graph is not the scored one"
            for entry, found in ids.items() if len(found) > 1}


def build_leaderboard(records: Iterable[Mapping[str, Any]], protocol: str | Protocol = "ntire2022",
                      track: str | None = None, *, baseline: str = "auto", baseline_entry: str | None = None,
                      gate: str | None = None, runtime_stat: str | None = None,
                      rank_references: bool = False, allow_random: bool = False,
                      allow_unsteady: bool = False) -> Leaderboard:
    """Rank ``records`` (``ntirekit eval`` results and/or published rows) under ``protocol``'s ``track``.

    ``baseline``: ``"auto"`` (score tracks: the published constants where the runtimes were measured on their device,
    else the baseline entry measured here when it is; see the module doc), ``"published"`` (score constants from
    the protocol; runtimes must come from one device) or ``"measured"`` (the baseline entry measured on each row's
    device: score constants, or rank-sum ratios). ``gate``: a gate set of the protocol (default: the protocol's), or
    ``"none"``. ``rank_references`` ranks the protocol's reference rows like any entry. ``allow_random`` ranks rows
    measured with random weights (otherwise they are listed apart, status ``random weights``). ``allow_unsteady``
    ranks rows whose runtime cannot rank (:mod:`ntirekit.rank.timing`), with the caveat.
    """
    proto = load_protocol(protocol)
    trk = proto.track(track)
    gate_set = proto.gate(gate)
    if baseline not in BASELINE_MODES:
        raise LeaderboardError(f"baseline must be one of {', '.join(BASELINE_MODES)}, not {baseline!r}")
    base_entry = baseline_entry or proto.baseline_entry
    stat = runtime_stat or proto.runtime_stat
    records = list(records)
    _check_datasets(records, proto.flops, stat)
    rows = merge_records(records, proto.flops, stat)
    if not rows:
        raise LeaderboardError("no results to rank")

    baseline, switched = _resolve_baseline(rows, trk, proto, baseline, base_entry)
    graph_mismatch = graph_mismatches(records)
    if baseline == "published":
        _check_devices(rows, _device_bound(trk.metrics), base_entry)
    normalised = _apply_baseline(rows, trk, proto, baseline, base_entry)
    notes: list[str] = []

    # status: reference / missing / gate / runtime that cannot rank / score that overflows
    gates = list(gate_set.gates) if gate_set else []
    ungated = tuple(dict.fromkeys(g.metric for g in gates if not any(g.metric in r.stats for r in rows)))
    gates = [g for g in gates if g.metric not in ungated]
    references = (set() if rank_references else set(proto.reference)) | {
        str(r["entry"]) for r in records if isinstance(r, Mapping) and r.get("reference")}   # bicubic & co.
    ranks_runtime = "runtime_ms" in trk.metrics
    overflowed: list[str] = []
    for row in rows:
        overflow = ""
        if trk.method == "score" and all(m in row.values and m in row.baseline for m in trk.metrics):
            try:
                row.total = score({m: row.values[m].mean for m in trk.metrics}, row.baseline, trk.weights,
                                  trk.exponent)
            except OverflowError:
                overflow = _overflow(row, trk, proto, baseline, base_entry)
                overflowed.append(row.label)
        reason = ""
        if row.refused:
            reason = "; ".join(f"{m} {v!r} refused (not a positive finite number)" for m, v in row.refused.items())
        reason = reason or graph_mismatch.get(row.entry, "") or _missing_reason(row, trk.metrics, baseline, base_entry)
        lacking = [m for m in trk.metrics if m not in row.baseline] if trk.method == "score" else []
        if lacking and not reason:
            reason = f"no {base_entry} {', '.join(lacking)} to score against"
        for g in gates if not reason else ():
            if g.metric not in row.stats:
                reason = f"no {g.metric} for the gate ({g.describe()})"
            elif not g.passes(row.stats[g.metric].mean):
                value = row.stats[g.metric].mean
                m = METRICS[g.metric]
                reason = f"{g.metric} {value:.{m.decimals}f} {m.unit} fails the gate ({g.describe()})"
            if reason:
                break
        unsteady = ranks_runtime and "runtime_ms" in row.stats and row.runtime_caveat
        if unsteady and not reason and not allow_unsteady:
            reason = f"runtime cannot rank ({row.runtime_caveat})"
        reason = reason or overflow
        random = row.weights == "random" and not allow_random
        if row.entry in references:
            row.status = REFERENCE
            row.notes += [n for n in (reason, "random weights" if row.weights == "random" else "") if n]
        elif random:
            row.status, row.reason = RANDOM, "random weights (--allow-random to rank)"
        elif reason:
            row.status, row.reason = NOT_RANKED, reason
        else:
            if ungated:
                row.notes.append(f"ungated (no {' or '.join(ungated)})")
            if unsteady:
                row.notes.append(f"runtime ranked with a caveat ({row.runtime_caveat})")
        if row.errors and not reason:
            row.notes.append(f"{len(row.errors)} failed record(s) ignored: {row.errors[0]}")

    ranked = [r for r in rows if r.status == RANKED]
    for metric in trk.metrics:
        for row, r in zip(ranked, competition_ranks([row.values[metric].mean for row in ranked],
                                                    proto.higher_is_better(metric))):
            row.ranks[metric] = r
    if trk.method == "rank_sum":
        for row in ranked:
            row.total = float(sum(row.ranks.values()))
    for row, r in zip(ranked, competition_ranks([row.total for row in ranked])):
        row.rank = r

    order = {status: i for i, status in enumerate(STATUSES)}
    rows.sort(key=lambda r: (order[r.status], r.rank or 0, r.total if r.total is not None else float("inf"),
                             r.label))

    shown = list(proto.columns) or [g.metric for g in (gate_set.gates if gate_set else ())]
    columns = [m for m in shown if m in trk.metrics or any(m in r.values for r in rows)]
    columns += [m for m in trk.metrics if m not in columns]
    notes[:0] = _notes(rows, trk, proto, gate_set, baseline, base_entry, normalised, stat, columns)
    if "mem_mb" in columns and any(r.get("memory_kind") == "cpu_estimate" for r in records):
        notes.append("memory on CPU is the kit's estimate (peak of live tensors), not a CUDA figure")
    notes += [f"{row.label}: {m} {v!r} refused: not a positive finite number" for row in rows
              for m, v in row.refused.items()]
    if any(r.status == RANDOM for r in rows):
        notes.append("random weights: measured with randomly initialised weights, listed apart and not ranked "
                     "(--allow-random ranks them)")
    elif allow_random and any(r.weights == "random" for r in rows):
        notes.append("random weights ranked (--allow-random): their PSNR is meaningless")
    first = [switched] if switched else []
    unsteady_note = _unsteady_note(rows, ranks_runtime, allow_unsteady, "runtime_ms" in columns)
    first += [unsteady_note] if unsteady_note else []
    if overflowed:
        first.append(f"SCORE REFUSED for {len(overflowed)} row(s) ({', '.join(overflowed)}): exp(2 x value / "
                     "baseline) overflows; see each row's reason")
    if ungated:
        first.append(ungated_note(gate_set.name, ungated, partly=bool(gates)))  # type: ignore[union-attr]
    return Leaderboard(proto, trk, rows, columns, gate_set, baseline, base_entry, normalised, first + notes,
                       ungated, allow_random, allow_unsteady, conditions(records, rows))


def unsteady_caveat(rows: Iterable[Row], ranks_runtime: bool, allow: bool) -> tuple[int, str, str] | None:
    """The rows among ``rows`` whose runtime cannot rank, as ``(how many, their reasons once each, joined by "; ",
    what is done with them)``: ``"shown"`` (the track does not rank runtime: shown, not comparable), ``"ranked"``
    (ranked anyway: ``allow``, --allow-unsteady) or ``"not ranked"``; None when there is none. The leaderboard's note
    and the plot's caveat line each say it in their own words."""
    caveats = [r.runtime_caveat for r in rows if r.runtime_caveat]
    if not caveats:
        return None
    how = "shown" if not ranks_runtime else "ranked" if allow else "not ranked"
    return len(caveats), "; ".join(dict.fromkeys(caveats)), how


def _unsteady_note(rows: list[Row], ranks_runtime: bool, allow: bool, shown: bool) -> str:
    """The caveat line for the rows whose runtime cannot rank ("" when there is none, or runtime is not shown)."""
    caveat = unsteady_caveat([r for r in rows if "runtime_ms" in r.stats], ranks_runtime, allow)
    if caveat is None or not (ranks_runtime or shown):
        return ""
    n, why, how = caveat
    head = f"RUNTIMES CANNOT RANK: {n} of {len(rows)} row(s) ({why}; marked *)"
    if how == "shown":
        return f"{head}: shown, not comparable; {RULE}"
    if how == "ranked":
        return f"{head}: ranked anyway (--allow-unsteady), a ranking these timings cannot support; {RULE}"
    return f"{head}: not ranked; {RULE} (--allow-unsteady ranks them with this caveat)"


def ungated_note(gate: str, metrics: Iterable[str], partly: bool = False) -> str:
    """The one line saying a gate could not be applied (first note of the leaderboard; printed by the CLI);
    ``partly``: its rules on other metrics were applied."""
    names = " and ".join(metrics)
    what = f"GATE PARTLY APPLIED: gate {gate!r} has no {names} to check" if partly else \
        f"GATE NOT APPLIED: gate {gate!r} has no {names} to check"
    return (f"{what} (no result carries it), so ranked rows are marked ungated; {SPLIT_RULE}; "
            "--gate none ranks without a gate")


def _notes(rows: list[Row], track: Track, proto: Protocol, gate_set: GateSet | None, mode: str,
           base_entry: str | None, normalised: tuple[str, ...], stat: str, columns: list[str]) -> list[str]:
    notes = ["value (rank): ranks computed on unrounded values; ties share the best rank and skip the next"]
    if any(r.status == REFERENCE for r in rows):
        notes.append("ref: a reference row of the protocol, shown and not ranked")
    if gate_set is None:
        notes.append("no PSNR gate")
    else:
        rules = " and ".join(g.describe() for g in gate_set.gates)
        desc = f" ({gate_set.description})" if gate_set.description else ""
        notes.append(f"gate {gate_set.name!r}{desc}: {rules}")
    others = [n for n in proto.gates if gate_set is None or n != gate_set.name]
    if others:
        notes.append(f"other gates of {proto.name}: {', '.join(others)} (--gate NAME)")
    devices = sorted({r.device_label for r in rows if r.device_label})
    if devices:
        notes.append(("device: " if len(devices) == 1 else "devices: ") + "; ".join(devices))
        if mode == "published" and len(devices) > 1:
            shown = [m for m in _device_bound(columns) if m not in track.metrics]
            if shown:
                notes.append(f"{', '.join(shown)} come from different devices: shown, not comparable")
    if track.method == "score":
        if mode == "published":
            consts = ", ".join(f"{m} {proto.baseline[m]:g}" for m in track.metrics)
            on = f" on {proto.baseline_device}" if proto.baseline_device else ""
            notes.append(f"baseline {base_entry or '(unnamed)'} as published{on}: {consts}")
            here = sorted({r.device_label for r in rows if r.source != "published" and r.device is not None
                           and on_published_device(r.device[0], proto) is not True})
            if here and proto.baseline_device:
                notes.append(f"runtimes measured on {'; '.join(here)} against a baseline published on "
                             f"{proto.baseline_device}: these scores do not compare; measure {base_entry} in the "
                             "same run and use --baseline measured")
        else:
            notes.append(f"baseline: {base_entry} as measured on each device")
    if any(m in columns for m in normalised):
        notes.append(f"{', '.join(m for m in normalised if m in columns)} relative to {base_entry} measured on the same device")
    measured = {m for r in rows if r.source != "published" for m in r.stats}
    if "runtime_ms" in measured and "runtime_ms" in columns:
        what = "the timer's headline figure (ntire timer: mean; robust timer: median)" if stat == "headline" \
            else f"the results' runtime_ms.{stat}"
        notes.append(f"runtime: {what}")
    if "flops_g" in measured and "flops_g" in columns:
        notes.append(f"FLOPs: MACs counted by {proto.flops} on 1x3x256x256")
    if any(s.std > 0 for r in rows for s in r.values.values()):         # a ± is shown somewhere
        notes.append("several runs: the mean is ranked; ± is the standard deviation across runs")
    return notes
