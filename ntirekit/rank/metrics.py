"""The metrics a leaderboard can rank, in the units of the challenge tables, and how each is read from a record.

Every metric has one canonical name, which is also its column name in a published CSV
(``entry, psnr_val, psnr_test, runtime_ms, params_m, flops_g, acts_m, mem_mb``, optionally ``convs``):

=============  ==========================================================  =========  =========
metric         read from an ``ntirekit eval`` record                        unit       better
=============  ==========================================================  =========  =========
psnr_val       ``psnr_db`` of a record whose ``split``/``dataset`` says valid  dB        higher
psnr_test      ``psnr_db`` of a record whose ``split``/``dataset`` says test   dB        higher
runtime_ms     ``runtime_ms[<stat>]`` (see RUNTIME_STATS), or a plain number  ms      lower
params_m       ``params`` / 10^6                                             M          lower
flops_g        ``<protocol's MAC field>`` / 10^9: ``macs_ntire2022`` (+ ``_missed``) or ``macs_fvcore``  G  lower
acts_m         (``activations`` + ``activations_missed``) / 10^6             M          lower
mem_mb         ``max_memory_mib``                                            MiB        lower
convs          ``convs`` + ``convs_missed``                                 count      lower
=============  ==========================================================  =========  =========

The ``*_missed`` figures are the 2022 counter's rules applied to the convolutions it cannot see (functional calls),
measured on an entry's exported graph: ranked with the official figure, so hiding a convolution gains nothing.
A record may also carry a metric directly under its canonical name, in table units (that is how published CSV rows
enter); that value wins over the raw field. Memory is in MiB everywhere (``Memory [MiB]``): the challenge tables'
"MB" is ``torch.cuda.max_memory_allocated() / 1024**2``, so MiB; the column keeps its published name ``mem_mb``.
``runtime_ms`` and ``mem_mb`` depend on the machine (``device_bound``):
their values from different device fingerprints are never ranked together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ntirekit.core.records import split_of
from ntirekit.measure.runtime import headline

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str               # column heading without unit
    unit: str                # "" for counts
    higher_is_better: bool
    decimals: int
    device_bound: bool = False

    @property
    def heading(self) -> str:
        return f"{self.label} [{self.unit}]" if self.unit else self.label


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr_val", "PSNR val", "dB", True, 2),
    Metric("psnr_test", "PSNR test", "dB", True, 2),
    Metric("runtime_ms", "Runtime", "ms", False, 2, device_bound=True),
    Metric("params_m", "Params", "M", False, 3),
    Metric("flops_g", "FLOPs", "G", False, 2),
    Metric("acts_m", "Acts", "M", False, 2),
    Metric("mem_mb", "Memory", "MiB", False, 2, device_bound=True),
    Metric("convs", "#Conv", "", False, 0),
)}

#: Where a record's MACs may come from (the protocol's ``flops`` key names one).
FLOPS_FIELDS = ("macs_ntire2022", "macs_fvcore")
#: Statistics of a record's ``runtime_ms`` object a protocol may rank; ``headline`` is the timer's own figure (the mean
#: for the ``ntire`` timer, as the organisers report; the median for the ``robust`` timer).
RUNTIME_STATS = ("headline", "mean", "median")


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def psnr_split(record: Record) -> str | None:
    """``"val"`` or ``"test"`` from the record's ``split`` field, else from its ``dataset`` name; None if neither says
    (:func:`ntirekit.core.records.split_of`, the one rule)."""
    dataset = record.get("dataset")
    texts = [record.get("split")]
    if isinstance(dataset, Mapping):
        texts += [dataset.get("split"), dataset.get("name")]
    else:
        texts.append(dataset)
    for text in texts:
        split = split_of(text)
        if split is not None:
            return "val" if split == "valid" else split
    return None


def _psnr(split: str) -> Callable[[Record, str, str], float | None]:
    def read(record: Record, flops_field: str, runtime_stat: str) -> float | None:
        psnr = record.get("psnr_db")
        if isinstance(psnr, Mapping):  # {"valid": .., "test": ..}
            for key, value in psnr.items():
                if psnr_split({"split": key}) == split:
                    return number(value)
            return None
        return number(psnr) if psnr_split(record) == split else None
    return read


def _scaled(field: str, scale: float) -> Callable[[Record, str, str], float | None]:
    def read(record: Record, flops_field: str, runtime_stat: str) -> float | None:
        value = number(record.get(field))
        return None if value is None else value / scale
    return read


def _runtime(record: Record, flops_field: str, runtime_stat: str) -> float | None:
    runtime = record.get("runtime_ms")
    if not isinstance(runtime, Mapping):
        return None
    if runtime_stat == "headline":
        try:
            return number(headline(runtime))
        except (KeyError, TypeError, ValueError):  # a hand-written record with one statistic
            return number(runtime.get("mean", runtime.get("median")))
    return number(runtime.get(runtime_stat))


def runtime_runs(record: Record, runtime_stat: str) -> list[float] | None:
    """The per-run figures of a record that pooled several runs (``runtime_ms.runs``: each run's headline figure,
    :func:`ntirekit.measure.runtime.pool_runs`), when the headline is what is ranked; else None."""
    runtime = record.get("runtime_ms")
    if runtime_stat != "headline" or not isinstance(runtime, Mapping) or not isinstance(runtime.get("runs"), list):
        return None
    runs = [number(v) for v in runtime["runs"]]
    return runs if runs and all(v is not None for v in runs) else None  # type: ignore[return-value]


def runtime_timer(record: Record) -> str | None:
    """Which timer measured the record's runtime (``ntire`` | ``robust``), if it says."""
    runtime = record.get("runtime_ms")
    timer = runtime.get("timer") if isinstance(runtime, Mapping) else None
    return str(timer or record.get("timer") or "") or None


#: the 2022 counter's figures that a record measured on an exported graph also counts as missed (``*_missed``)
COUNTED_WITH_MISSED = ("macs_ntire2022", "activations", "convs")


def with_missed(record: Record, field: str) -> float | None:
    """``field`` plus ``field_missed``: a record measured on an exported graph counts, beside the official 2022
    counter's figure, the convolutions that counter cannot see (functional ``F.conv2d``: ``*_missed``,
    :mod:`ntirekit.measure.graph_counts`); the ranked figure is their sum, so hiding a convolution from the official
    counter gains nothing. None when ``field`` is not a finite number; a record without ``field_missed`` (a trusted
    eager measurement) ranks on its official figure."""
    value = number(record.get(field))
    missed = number(record.get(f"{field}_missed")) or 0.0
    return None if value is None else value + missed


def _flops(record: Record, flops_field: str, runtime_stat: str) -> float | None:
    value = with_missed(record, flops_field) if flops_field == "macs_ntire2022" else number(record.get(flops_field))
    return None if value is None else value / 1e9


def _conv_scaled(field: str, factor: float) -> Callable[[Record, str, str], float | None]:
    def read(record: Record, _flops_field: str, _runtime_stat: str) -> float | None:
        value = with_missed(record, field)
        return None if value is None else value / factor
    return read


_READERS: dict[str, Callable[[Record, str, str], float | None]] = {
    "psnr_val": _psnr("val"),
    "psnr_test": _psnr("test"),
    "runtime_ms": _runtime,
    "params_m": _scaled("params", 1e6),
    "flops_g": _flops,
    "acts_m": _conv_scaled("activations", 1e6),
    "mem_mb": _scaled("max_memory_mib", 1.0),
    "convs": _conv_scaled("convs", 1.0),
}


#: Metrics whose value must be a positive finite number; anything else in a record is refused, not ranked.
POSITIVE = ("runtime_ms", "params_m", "flops_g")


def _raw(record: Record, name: str, flops_field: str, runtime_stat: str) -> Any:
    """The value a record gives for ``name`` before any filtering (None when it gives none)."""
    if record.get(name) is not None and not isinstance(record.get(name), Mapping):
        return record[name]
    if name == "runtime_ms":
        runtime = record.get("runtime_ms")
        if not isinstance(runtime, Mapping):
            return None
        if runtime_stat != "headline":
            return runtime.get(runtime_stat)
        first = "mean" if runtime.get("timer") == "ntire" else "median"
        return next((runtime[k] for k in (first, "mean", "median") if runtime.get(k) is not None), None)
    return record.get({"params_m": "params", "flops_g": flops_field}[name])


def refused(record: Record, flops_field: str = "macs_ntire2022", runtime_stat: str = "headline") -> dict[str, Any]:
    """``{metric: value}`` for each :data:`POSITIVE` metric the record gives as something other than a positive finite
    number (negative, zero, NaN, infinite, not a number): such values are refused, never ranked."""
    out: dict[str, Any] = {}
    for name in POSITIVE:
        value = _raw(record, name, flops_field, runtime_stat)
        if value is not None and not (number(value) is not None and value > 0):
            out[name] = value
    return out


def extract(record: Record, flops_field: str = "macs_ntire2022", runtime_stat: str = "headline") -> dict[str, float]:
    """Every metric the record carries, in table units (canonical fields in table units first, then raw fields)."""
    values: dict[str, float] = {}
    for name, read in _READERS.items():
        # canonical field, table units (a plain number for runtime_ms); "convs" is also the raw field, read with
        # what the official counter missed
        value = None if name == "convs" and "convs_missed" in record else number(record.get(name))
        if value is None:
            value = read(record, flops_field, runtime_stat)
        if value is not None:
            values[name] = value
    return values
