"""What a leaderboard reads: ``ntirekit eval`` result records (JSON files or folders of them) and published tables (CSV).

A published CSV has the columns ``entry, psnr_val, psnr_test, runtime_ms, params_m, flops_g, acts_m, mem_mb`` in the
units of the challenge tables (params in 10^6, FLOPs in 10^9, activations in 10^6, memory in MiB: the tables' "MB"
is ``max_memory_allocated() / 1024**2``), and optionally ``convs`` and ``device`` (where the figures were measured).
An empty cell is a missing value. Each row becomes a record with ``source = "published"``, so that published rows
are never averaged with measured ones.

Packaged tables (``published/``):

``ntire2022`` (``ntire2022_esr.csv``)
    The results table of the NTIRE 2022 Efficient SR challenge report (Li et al., CVPRW 2022), as the organisers
    published it in their repository (ofsoundof/NTIRE2022_ESR, ``figs/results.png``), on a Titan Xp: the 35 ranked
    teams, the 8 teams listed below them as not ranked (PSNR under the baseline's), and the two baselines under the
    kit's entry names ``rfdn`` (the AIM 2020 winner) and ``imdn_baseline`` (their parameter counts exact, from
    ``shared/docs/protocols.md`` §1.2). Team names as printed; ByteESR's network is the kit's ``rlfn_ntire``. Values
    as printed (params to 3 decimals), so rows that print alike share a rank where the report, ranking unrounded
    values, split them (params: rainbow / NKU-ESR, ByteESR / Aselsan Research, Super / Alpan Team, cceNBgdd /
    Express; FLOPs: Dragon / cceNBgdd).
"""

from __future__ import annotations

import csv
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ntirekit.core.errors import NtirekitError
from ntirekit.core.records import iter_result_files, read_result
from ntirekit.rank.metrics import number

REQUIRED_COLUMNS = ("entry", "psnr_val", "psnr_test", "runtime_ms", "params_m", "flops_g", "acts_m", "mem_mb")
OPTIONAL_COLUMNS = ("convs",)
#: published table name -> packaged CSV (``ntirekit/rank/published/``)
PUBLISHED = {"ntire2022": "ntire2022_esr.csv"}


class InputError(NtirekitError, ValueError):
    """A results file or published table that cannot be read; the message is one line naming the file."""


def read_published_csv(path: str | os.PathLike, text: str | None = None) -> list[dict[str, Any]]:
    """Records from a published-figures CSV (``text`` given: parse it, ``path`` only names it in messages)."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r} (a published table needs columns "
                         f"{', '.join(REQUIRED_COLUMNS)})")
    records = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row["entry"]:
            raise InputError(f"{path}: line {line}: empty 'entry'")
        record: dict[str, Any] = {"entry": row["entry"], "status": "ok", "source": "published",
                                  "device": {"kind": "published", "gpu": row.get("device") or path.stem},
                                  "file": str(path)}
        for column in (*REQUIRED_COLUMNS[1:], *OPTIONAL_COLUMNS):
            cell = row.get(column, "")
            if not cell:
                continue
            try:
                value = number(float(cell))
            except ValueError:
                value = None
            if value is None:
                raise InputError(f"{path}: line {line} ({row['entry']}): {column} {cell!r} is not a number")
            record[column] = value
        records.append(record)
    return records


def published_table(name: str) -> list[dict[str, Any]]:
    """A packaged published table by name (``ntire2022``)."""
    if name not in PUBLISHED:
        raise InputError(f"no published table {name!r} (packaged: {', '.join(PUBLISHED)})")
    item = resources.files("ntirekit.rank") / "published" / PUBLISHED[name]
    return read_published_csv(PUBLISHED[name], item.read_text(encoding="utf-8"))


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Records from result JSON files, folders of them (every ``*.json``) and published CSV tables, in order."""
    records: list[dict[str, Any]] = []
    for path in iter_result_files(paths):
        if path.suffix.lower() == ".csv":
            records += read_published_csv(path)
        else:
            record = read_result(path)
            record.setdefault("file", str(path))
            records.append(record)
    return records
