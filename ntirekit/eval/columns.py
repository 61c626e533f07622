"""Columns of the closing ``eval`` table that several tracks share (each track declares its own list)."""

from __future__ import annotations

from typing import Any, Callable

from ntirekit.eval.track import Column
from ntirekit.measure.runtime import headline


def cell(*keys: str, scale: float = 1.0, fmt: str = "{:.2f}") -> Callable[[dict[str, Any]], str]:
    """A cell showing ``record[keys[0]][keys[1]]...`` divided by ``scale`` in ``fmt`` (empty when absent)."""
    def get(rec: dict[str, Any]) -> str:
        value: Any = rec
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return "" if value is None else fmt.format(value / scale if scale != 1.0 else value)
    return get


def _runtime(rec: dict[str, Any]) -> str:
    stats = rec.get("runtime_ms")
    return "" if not stats else f"{headline(stats):.2f} ({stats.get('timer')})"


COUNTS = (Column("Params [M]", cell("params", scale=1e6, fmt="{:.4f}")),
          Column("FLOPs [G] (2022)", cell("macs_ntire2022", scale=1e9)),
          Column("FLOPs [G] (fvcore)", cell("macs_fvcore", scale=1e9, fmt="{:.4f}")),
          Column("Acts [M]", cell("activations", scale=1e6)), Column("#Conv", cell("convs", fmt="{:d}")))
RUNTIME = (Column("Runtime [ms]", _runtime), Column("CV", cell("runtime_ms", "cv", fmt="{:.3f}")))
MEMORY = (Column("Memory [MiB]", cell("max_memory_mib")),)
