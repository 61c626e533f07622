"""CI regression: re-measure the entries recorded under ``metrics/<fingerprint id>/`` and list every regression.

Layout of the reference figures: one folder per device fingerprint (:func:`ntirekit.core.device.fingerprint_id`),
holding the records exactly as ``ntirekit eval --out`` writes them (:func:`ntirekit.core.records.result_path`)::

    metrics/<fingerprint id>/<entry>__<track>__<data>[.<split>].<protocol>__<fingerprint id>.json

so ``ntirekit eval --track overall --out metrics/<id>`` (or ``ntirekit regress --record``) records them. A record's
``options`` (the :class:`~ntirekit.eval.track.EvalOptions` it ran with, as a dict), when present, is used to re-run it;
otherwise the track's defaults with ``--data`` and the record's ``protocol``.

What counts as a regression, per recorded successful record:

- **counts** ``params``, ``macs_ntire2022``, ``macs_fvcore``, ``activations``, ``convs``: any difference;
- **PSNR** every top-level ``psnr*`` figure (``psnr_db``, ...): a drop of more than ``tol_psnr`` dB;
- **runtime** ``runtime_ms`` and ``runtime_ms_per_frame`` (a number, or the timer's stats dict whose headline figure is
  taken): the ratio entry / baseline entry, both measured in the same run, growing by more than ``tol_runtime``
  relative to the recorded ratio. Absolute times are never compared (CI machines differ in load and clocks), and the
  baseline entry itself is only shown;
- an entry that fails now, or is no longer found;
- a record measured now on another dataset than recorded: datasets are compared by identity (name and a digest of
  their file list and sizes, :func:`ntirekit.core.records.record_dataset`), so a folder named alike with other
  content is not compared as if it were the same.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device
from ntirekit.core.errors import NtirekitError
from ntirekit.core.records import ResultError, iter_result_files, read_result, record_dataset
from ntirekit.core.registry import discover
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import options_from_dict
from ntirekit.measure.runtime import headline

COUNT_KEYS = ("params", "macs_ntire2022", "macs_fvcore", "activations", "convs")
RUNTIME_KEYS = ("runtime_ms", "runtime_ms_per_frame")
DEFAULT_BASELINE = "rlfn_ntire"


class RegressError(NtirekitError):
    """The reference folder cannot be used (missing, empty, unreadable records)."""


def figure(rec: Mapping[str, Any], key: str) -> float | None:
    """A record's figure: a finite number, or the headline of a timer's stats dict; None when absent."""
    value = rec.get(key)
    if isinstance(value, Mapping):
        try:
            value = headline(value)
        except (KeyError, TypeError, ValueError):
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def psnr_keys(rec: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in rec if k.startswith("psnr") and figure(rec, k) is not None)


@dataclass
class Finding:
    """One comparison: ``ok`` False is a regression."""

    entry: str
    track: str
    metric: str
    recorded: Any
    now: Any
    ok: bool
    note: str = ""

    def __str__(self) -> str:
        return f"{self.entry} [{self.track}] {self.metric}: recorded {_fmt(self.recorded)}, now {_fmt(self.now)}" + (
            f" ({self.note})" if self.note else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


@dataclass
class RegressReport:
    folder: str
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "ok": self.ok, "warnings": self.warnings,
                "findings": [vars(f) for f in self.findings], "regressions": [str(f) for f in self.regressions]}


def compare(recorded: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]], *, tol_psnr: float = 0.01,
            tol_runtime: float = 0.10, baseline: str = DEFAULT_BASELINE) -> list[Finding]:
    """Every check of every recorded successful record against its re-measurement (see the module docstring)."""
    now_by = {(r["entry"], r["track"], record_dataset(r)): r for r in now}
    rec_by = {(r["entry"], r["track"], record_dataset(r)): r for r in recorded}
    findings: list[Finding] = []
    for ref in recorded:
        entry, track, dataset = ref["entry"], ref["track"], record_dataset(ref)
        if ref.get("status") != "ok":
            continue
        cur = now_by.get((entry, track, dataset))
        other = next((r for r in now if (r["entry"], r["track"]) == (entry, track)), None)
        if cur is None and other is not None and other.get("status") != "ok":
            cur = other                                 # failed before its dataset was known
        if cur is None or cur.get("status") != "ok":
            why = ("not measured now" if other is None else
                   f"measured now on dataset {record_dataset(other)}, recorded on {dataset}: not comparable")
            why = f"fails now: {cur.get('error', '')}" if cur is not None else why
            findings.append(Finding(entry, track, "status", "ok", None if cur is None else "failed", False, why))
            continue
        for key in COUNT_KEYS:
            if key in ref:
                same = cur.get(key) == ref[key]
                findings.append(Finding(entry, track, key, ref[key], cur.get(key), same,
                                        "" if same else "count changed"))
        for key in psnr_keys(ref):
            was, is_ = figure(ref, key), figure(cur, key)
            ok = is_ is not None and was is not None and is_ >= was - tol_psnr
            findings.append(Finding(entry, track, key, was, is_, ok,
                                    "" if ok else f"dropped by more than {tol_psnr:g} dB"
                                    if is_ is not None else "missing now"))
        for key in RUNTIME_KEYS:
            was = figure(ref, key)
            if was is None:
                continue
            is_ = figure(cur, key)
            if entry == baseline:
                findings.append(Finding(entry, track, key, was, is_, True, "baseline of the runtime ratios"))
                continue
            base_was = figure(rec_by.get((baseline, track, dataset), {}), key)
            base_now_rec = now_by.get((baseline, track, dataset), {})
            base_is = figure(base_now_rec, key) if base_now_rec.get("status") == "ok" else None
            metric = f"{key} / {baseline}"
            if base_was is None or base_is is None or is_ is None or base_was <= 0 or base_is <= 0:
                missing = (f"baseline {baseline} has no recorded {key} in this track" if base_was is None else
                           f"baseline {baseline} has no {key} now" if base_is is None else f"no {key} now")
                findings.append(Finding(entry, track, metric, None, None, False, f"cannot compare: {missing}"))
                continue
            ratio_was, ratio_is = was / base_was, is_ / base_is
            ok = ratio_is <= ratio_was * (1.0 + tol_runtime)
            findings.append(Finding(entry, track, metric, ratio_was, ratio_is, ok,
                                    "" if ok else f"slower by {ratio_is / ratio_was - 1:.1%} relative to {baseline} "
                                                  f"(tolerance {tol_runtime:.0%})"))
    return findings


# ---------------------------------------------------------------------------------------------------------- I/O

def load_records(folder: str | Path) -> list[dict[str, Any]]:
    """The records of a reference folder; :class:`RegressError` when there are none or one is unreadable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RegressError(f"{folder}: no such folder of reference figures (record them with "
                           f"'ntirekit regress --record' on this device)")
    try:
        records = [read_result(p) for p in iter_result_files([folder])]
    except ResultError as exc:
        raise RegressError(str(exc)) from None
    if not records:
        raise RegressError(f"{folder}: holds no result records")
    return records


def options_for(rec: Mapping[str, Any], *, device: str, data: str | None) -> Any:
    """The :class:`EvalOptions` to re-run a record with."""
    base = dict(rec.get("options") or {})
    base.pop("weights", None)
    base.update(track=rec["track"], device=device, progress=False)
    if data is not None:
        base["data"] = data
    if "protocol" in rec and "protocol" not in (rec.get("options") or {}):
        base["protocol"] = rec["protocol"]
    return options_from_dict(base)


def remeasure(records: Sequence[Mapping[str, Any]], *, device: str = "auto", data: str | None = None,
              entry_roots: Iterable[str] = (), out_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Run every recorded (entry, track) again, grouped by track and options, as ``ntirekit eval`` would (the fresh
    records carry the ``options`` they ran with, so that they can be run again exactly)."""
    registry = discover(list(entry_roots))
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for rec in records:
        options = options_for(rec, device=device, data=data)
        groups[json.dumps(vars(options), sort_keys=True, default=str)].append(rec)
    out: list[dict[str, Any]] = []
    for recs in groups.values():
        options = options_for(recs[0], device=device, data=data)
        known = set(registry)                       # (Registry raises EntryError, not KeyError, for unknown names)
        entries = [registry[r["entry"]] for r in recs if r["entry"] in known]
        out += [{"entry": r["entry"], "track": r["track"], "status": "failed",
                 "error": f"no entry named {r['entry']!r} is found now"} for r in recs if r["entry"] not in known]
        if entries:
            out += run_track(entries, options, out_dir)
    return out


def regress(folder: str | Path, *, tol_psnr: float = 0.01, tol_runtime: float = 0.10,
            baseline: str = DEFAULT_BASELINE, device: str = "auto", data: str | None = None,
            entry_roots: Iterable[str] = (), out_dir: str | Path | None = None,
            measure: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None) -> RegressReport:
    """Re-measure the records in ``folder`` (``measure``: how; default :func:`remeasure`) and compare."""
    records = load_records(folder)
    report = RegressReport(str(folder))
    here = fingerprint_id(fingerprint(resolve_device(device)))
    if Path(folder).name != here:
        report.warnings.append(f"this device is {here}; the reference folder is {Path(folder).name} (counts and "
                               "PSNR still compare; runtimes compare as ratios to the baseline)")
    failed = [r["entry"] + "__" + r["track"] for r in records if r.get("status") != "ok"]
    if failed:
        report.warnings.append(f"recorded as failed, not compared: {', '.join(failed)}")
    todo = [r for r in records if r.get("status") == "ok"]
    now = (measure or (lambda recs: remeasure(recs, device=device, data=data, entry_roots=entry_roots,
                                              out_dir=out_dir)))(todo)
    report.findings = compare(todo, now, tol_psnr=tol_psnr, tol_runtime=tol_runtime, baseline=baseline)
    return report


def record_reference(folder: str | Path, *, entries: Sequence[str] = (), tracks: Sequence[str] = (),
                     device: str = "auto", data: str | None = None,
                     entry_roots: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Write the reference records into ``folder``: the named entries on the named tracks, or, when none are named,
    the (entry, track) pairs already recorded there (measured again and overwritten)."""
    folder = Path(folder)
    if entries or tracks:
        if not entries or not tracks:
            raise RegressError("--record with --entry needs --track too (and the other way round)")
        registry = discover(list(entry_roots))
        out: list[dict[str, Any]] = []
        for track in tracks:
            options = options_for({"track": track}, device=device, data=data)
            out += run_track(registry.select(entries), options, folder)
        return out
    return remeasure(load_records(folder), device=device, data=data, entry_roots=entry_roots, out_dir=folder)
