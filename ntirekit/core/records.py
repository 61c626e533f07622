"""Result records: one JSON object per entry × track × device, written atomically.

Every record carries ``entry``, ``track``, ``status`` (``"ok"`` or ``"failed"``), ``device`` (the fingerprint of
:mod:`ntirekit.core.device`), ``versions`` and ``created`` (UTC, ISO 8601). A failed entry is recorded with its
``error`` (one line) and never stops or spoils the other entries' records.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

import ntirekit
from ntirekit.core.device import fingerprint_id
from ntirekit.core.errors import NtirekitError


class ResultError(NtirekitError):
    """A result file that cannot be read as a result record."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars (a NaN among them becomes None like any other)
        return _finite(value.item())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """NaN/inf become None so that the files are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_finite(obj), f, indent=2, default=_json_default, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def versions() -> dict[str, str]:
    return {"ntirekit": ntirekit.__version__, "torch": torch.__version__}


def record(entry: str, track: str, device: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A successful result record with the common fields filled in."""
    return {"entry": entry, "track": track, "status": "ok", "device": device, "versions": versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **fields}


def error_line(error: BaseException | str) -> str:
    """An error as the one line a record carries: ``"Type: first line"`` for an exception."""
    if isinstance(error, BaseException):
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
    return str(error).strip().splitlines()[0] if str(error).strip() else "failed"


def failure(entry: str, track: str, device: dict[str, Any], error: BaseException | str, **fields: Any) -> dict[str, Any]:
    """A failed result record; ``error`` is reduced to one line (:func:`error_line`)."""
    rec = record(entry, track, device, **fields)
    rec.update(status="failed", error=error_line(error))
    return rec


def result_path(out_dir: str | os.PathLike, entry: str, track: str, device: dict[str, Any]) -> Path:
    """``OUT/<entry>__<track>__<fingerprint id>.json``: the name says what, which track and on what device."""
    return Path(out_dir) / f"{entry}__{track}__{fingerprint_id(device)}.json"


def read_result(path: str | os.PathLike) -> dict[str, Any]:
    """One result record; a file that is not a JSON object with ``entry`` raises :class:`ResultError`."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(obj, dict) or "entry" not in obj:
        raise ResultError(f"{path}: not an ntirekit result (no 'entry' field)")
    return obj


def iter_result_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files given directly, plus every ``*.json`` inside given folders (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return files
