"""Ranking protocols as data: one TOML file per protocol, validated into frozen objects.

The packaged protocols live in ``ntirekit/rank/protocols/*.toml`` (``ntire2022``, ``ntire2024``, ``ntire2025``,
``ntire2026``); a user protocol is a TOML file of the same layout::

    name = "mylab"
    title = "My lab's efficient SR ranking"
    flops = "macs_fvcore"              # which MAC count feeds flops_g: macs_ntire2022 | macs_fvcore
    runtime_stat = "headline"          # which statistic of a record's runtime_ms: headline | mean | median
    reference = ["imdn_baseline"]      # entries shown but never ranked
    default_track = "overall"
    default_gate = "final"             # or "none"
    columns = ["psnr_val", "runtime_ms", "params_m"]   # what tables show (track metrics always shown)

    [directions]                       # optional overrides: "lower" or "higher" is better
    convs = "lower"

    [baseline]                         # the baseline entry, and (score tracks) its published constants
    entry = "rlfn_ntire"
    device = "RTX 3090"                # where the constants were measured (shown in notes)
    runtime_ms = 13.54
    flops_g = 19.67
    params_m = 0.317

    [gates.final]                      # a named gate: a threshold per metric (>= for higher-is-better metrics,
    description = "..."                #   <= for lower-is-better), or an explicit { min = .., max = .. }
    psnr_val = 26.90
    psnr_test = 26.99

    [tracks.overall]
    method = "rank_sum"                # the sum of per-metric ranks, ranked again
    metrics = ["runtime_ms", "params_m", "flops_g"]

    [tracks.score]
    method = "score"                   # sum of weight * exp(exponent * X / X_baseline), lower is better
    exponent = 2.0
    weights = { runtime_ms = 0.7, flops_g = 0.15, params_m = 0.15 }

Metric names are those of :mod:`ntirekit.rank.metrics`; an unknown name, key or value is a :class:`ProtocolError`
with one line naming the file and the place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ntirekit.core.errors import NtirekitError
from ntirekit.core.tomlw import load_file
from ntirekit.rank.metrics import FLOPS_FIELDS, METRICS, RUNTIME_STATS

METHODS = ("rank_sum", "score")
NO_GATE = "none"


class ProtocolError(NtirekitError, ValueError):
    """A protocol that does not exist or does not validate; the message is one line."""


@dataclass(frozen=True)
class Gate:
    """``min <= value <= max`` on one metric (either bound may be None)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def passes(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        m = METRICS[self.metric]
        unit = f" {m.unit}" if m.unit else ""
        parts = [f"{self.metric} ≥ {self.min:.{m.decimals}f}{unit}"] if self.min is not None else []
        parts += [f"{self.metric} ≤ {self.max:.{m.decimals}f}{unit}"] if self.max is not None else []
        return " and ".join(parts)


@dataclass(frozen=True)
class GateSet:
    name: str
    gates: tuple[Gate, ...]
    description: str = ""


@dataclass(frozen=True)
class Track:
    name: str
    method: str                          # rank_sum | score
    metrics: tuple[str, ...]             # ranked metrics (score: the weighted ones, in order)
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    exponent: float = 2.0
    title: str = ""

    def describe(self) -> str:
        if self.method == "score":
            terms = " + ".join(f"{w:g}·exp({self.exponent:g}·{m}/base)" for m, w in self.weights.items())
            return f"score = {terms} (lower is better)"
        if len(self.metrics) == 1:
            return f"rank by {self.metrics[0]}"
        return "rank-sum of " + ", ".join(self.metrics)


@dataclass(frozen=True)
class Protocol:
    name: str
    tracks: Mapping[str, Track]
    default_track: str
    gates: Mapping[str, GateSet] = field(default_factory=lambda: MappingProxyType({}))
    default_gate: str = NO_GATE
    title: str = ""
    flops: str = "macs_ntire2022"
    runtime_stat: str = "headline"
    reference: tuple[str, ...] = ()
    baseline_entry: str | None = None
    baseline: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # published constants
    baseline_device: str = ""
    directions: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))  # metric -> higher is better
    columns: tuple[str, ...] = ()
    source: str = ""

    def track(self, name: str | None = None) -> Track:
        name = name or self.default_track
        if name not in self.tracks:
            raise ProtocolError(f"protocol {self.name!r} has no track {name!r} (tracks: {', '.join(self.tracks)})")
        return self.tracks[name]

    def gate(self, name: str | None = None) -> GateSet | None:
        """The named gate set (default: the protocol's); None for ``"none"``."""
        name = name or self.default_gate
        if name == NO_GATE:
            return None
        if name not in self.gates:
            known = ", ".join([*self.gates, NO_GATE])
            raise ProtocolError(f"protocol {self.name!r} has no gate {name!r} (gates: {known})")
        return self.gates[name]

    def higher_is_better(self, metric: str) -> bool:
        return self.directions.get(metric, METRICS[metric].higher_is_better)


# ---------------------------------------------------------------------------------------------------------- loading

_TOP_KEYS = {"name", "title", "description", "flops", "runtime_stat", "reference", "default_track", "default_gate",
             "columns", "directions", "baseline", "gates", "tracks"}
_TRACK_KEYS = {"title", "description", "method", "metrics", "weights", "exponent"}


class _Checker:
    """Validation helpers that raise one-line errors naming the file and the place."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> ProtocolError:
        return ProtocolError(f"{self.source}: {where}: {message}")

    def metric(self, name: Any, where: str) -> str:
        if name not in METRICS:
            raise self.fail(where, f"unknown metric {name!r} (known: {', '.join(METRICS)})")
        return name

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")

    def table(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a table")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, not {value!r}")
        return float(value)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "must be a list of strings")
        return tuple(value)

    def choice(self, value: Any, choices: tuple[str, ...], where: str) -> str:
        if value not in choices:
            raise self.fail(where, f"{value!r} is not one of {', '.join(choices)}")
        return value


def parse_protocol(data: Mapping[str, Any], source: str = "<protocol>") -> Protocol:
    """Validate a protocol table (as read from TOML) into a :class:`Protocol`."""
    c = _Checker(source)
    c.keys(data, _TOP_KEYS, "top level")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise c.fail("top level", "'name' (a string) is required")

    directions: dict[str, bool] = {}
    for metric, way in c.table(data.get("directions", {}), "[directions]").items():
        c.metric(metric, "[directions]")
        directions[metric] = c.choice(way, ("lower", "higher"), f"[directions] {metric}") == "higher"

    def higher(metric: str) -> bool:
        return directions.get(metric, METRICS[metric].higher_is_better)

    baseline_table = dict(c.table(data.get("baseline", {}), "[baseline]"))
    baseline_entry = baseline_table.pop("entry", None)
    baseline_device = str(baseline_table.pop("device", ""))
    baseline = {c.metric(m, "[baseline]"): c.number(v, f"[baseline] {m}") for m, v in baseline_table.items()}

    gates: dict[str, GateSet] = {}
    for gate_name, table in c.table(data.get("gates", {}), "[gates]").items():
        where = f"[gates.{gate_name}]"
        table = dict(c.table(table, where))
        description = str(table.pop("description", ""))
        items = []
        for metric, bound in table.items():
            c.metric(metric, where)
            if isinstance(bound, Mapping):
                c.keys(bound, {"min", "max"}, f"{where} {metric}")
                low, high = (None if bound.get(k) is None else c.number(bound[k], f"{where} {metric}.{k}")
                             for k in ("min", "max"))
            else:
                value = c.number(bound, f"{where} {metric}")
                low, high = (value, None) if higher(metric) else (None, value)
            items.append(Gate(metric, low, high))
        gates[gate_name] = GateSet(gate_name, tuple(items), description)

    tracks: dict[str, Track] = {}
    for track_name, table in c.table(data.get("tracks", {}), "[tracks]").items():
        where = f"[tracks.{track_name}]"
        table = c.table(table, where)
        c.keys(table, _TRACK_KEYS, where)
        method = c.choice(table.get("method", "rank_sum"), METHODS, f"{where} method")
        if method == "score":
            weights_table = c.table(table.get("weights"), f"{where} weights")
            weights = {c.metric(m, f"{where} weights"): c.number(w, f"{where} weights.{m}")
                       for m, w in weights_table.items()}
            if not weights or any(w <= 0 for w in weights.values()):
                raise c.fail(f"{where} weights", "need at least one metric, each with a positive weight")
            for metric in weights:
                if higher(metric):
                    raise c.fail(f"{where} weights", f"{metric} is higher-is-better; a score ranks lower-is-better "
                                                     "metrics only")
            metrics = tuple(weights)
            if "metrics" in table and set(c.strings(table["metrics"], f"{where} metrics")) != set(metrics):
                raise c.fail(f"{where} metrics", "a score track ranks exactly its weighted metrics")
        else:
            if "weights" in table:
                raise c.fail(where, "'weights' belongs to method = \"score\"")
            metrics = tuple(c.metric(m, f"{where} metrics") for m in c.strings(table.get("metrics"), f"{where} metrics"))
            if not metrics or len(set(metrics)) != len(metrics):
                raise c.fail(f"{where} metrics", "need one or more distinct metrics")
            weights = {}
        exponent = c.number(table.get("exponent", 2.0), f"{where} exponent")
        tracks[track_name] = Track(track_name, method, metrics, MappingProxyType(weights), exponent,
                                   str(table.get("title", "")))
    if not tracks:
        raise c.fail("[tracks]", "a protocol needs at least one track")

    default_track = data.get("default_track", next(iter(tracks)))
    if default_track not in tracks:
        raise c.fail("default_track", f"{default_track!r} is not a track (tracks: {', '.join(tracks)})")
    default_gate = data.get("default_gate", next(iter(gates), NO_GATE))
    if default_gate != NO_GATE and default_gate not in gates:
        raise c.fail("default_gate", f"{default_gate!r} is not a gate (gates: {', '.join([*gates, NO_GATE])})")

    columns = tuple(c.metric(m, "columns") for m in c.strings(data.get("columns", []), "columns"))
    return Protocol(
        name=name,
        title=str(data.get("title", name)),
        tracks=MappingProxyType(tracks),
        default_track=default_track,
        gates=MappingProxyType(gates),
        default_gate=default_gate,
        flops=c.choice(data.get("flops", "macs_ntire2022"), FLOPS_FIELDS, "flops"),
        runtime_stat=c.choice(data.get("runtime_stat", "headline"), RUNTIME_STATS, "runtime_stat"),
        reference=c.strings(data.get("reference", []), "reference"),
        baseline_entry=None if baseline_entry is None else str(baseline_entry),
        baseline=MappingProxyType(baseline),
        baseline_device=baseline_device,
        directions=MappingProxyType(directions),
        columns=columns,
        source=source,
    )


def load_protocol_file(path: str | os.PathLike) -> Protocol:
    """A protocol from a TOML file."""
    path = Path(path)
    return parse_protocol(load_file(path, ProtocolError, "protocol file"), str(path))


def _packaged() -> dict[str, Any]:
    folder = resources.files("ntirekit.rank") / "protocols"
    return {item.name[:-5]: item for item in folder.iterdir() if item.name.endswith(".toml")}


def available_protocols() -> list[str]:
    """Names of the packaged protocols."""
    return sorted(_packaged())


def load_protocol(protocol: str | os.PathLike | Protocol) -> Protocol:
    """A packaged protocol by name, a protocol TOML file by path, or a :class:`Protocol` as it is."""
    if isinstance(protocol, Protocol):
        return protocol
    packaged = _packaged()
    if str(protocol) in packaged:
        item = packaged[str(protocol)]
        return parse_protocol(tomllib.loads(item.read_text(encoding="utf-8")), f"{protocol}.toml")
    if str(protocol).endswith(".toml") or Path(protocol).is_file():
        return load_protocol_file(protocol)
    raise ProtocolError(f"unknown protocol {str(protocol)!r} (packaged: {', '.join(sorted(packaged))}; "
                        "or give a .toml file)")
