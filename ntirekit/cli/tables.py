"""Plain-text tables of the commands: :func:`table` is ``tabulate`` without the columns that no row fills (an SSIM
column when SSIM was not asked for, a note column without notes), so that no column is ever empty."""

from __future__ import annotations

from typing import Any, Sequence

from tabulate import tabulate


def filled_columns(headers: Sequence[str], rows: Sequence[Sequence[Any]], keep: Sequence[str] = ()) -> list[int]:
    """Indices of the columns where at least one row has a non-empty cell, and of those named in ``keep``."""
    return [i for i, heading in enumerate(headers)
            if heading in keep or any(str(row[i]).strip() for row in rows if row[i] is not None)]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], keep: Sequence[str] = (), **options: Any) -> str:
    """``tabulate(rows, headers)`` (numbers printed as given) without the empty columns (``keep``: always shown)."""
    shown = filled_columns(headers, rows, keep)
    return tabulate([[row[i] for i in shown] for row in rows], headers=[headers[i] for i in shown],
                    disable_numparse=True, **options)
