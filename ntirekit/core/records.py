"""Result records: one JSON object per entry × track × dataset × split × protocol × device, written atomically.

Every record carries ``entry``, ``track``, ``status`` (``"ok"``, ``"failed"`` or ``"partial"``), ``device`` (the
fingerprint of :mod:`ntirekit.core.device`), ``versions`` and ``created`` (UTC, ISO 8601). A failed entry is recorded
with its ``error`` (one line) and never stops or spoils the other entries' records. A ``"partial"`` record
(``"partial": true``) holds what was complete when a run stopped (the counts and memory of a timed track before its
timing); a rerun with ``--resume`` measures it again.

**Datasets by content**: a record's ``dataset`` is the identity of the data it was measured on,
``<name>-<digest>`` (:mod:`ntirekit.data.identity`: the name and a short digest of the dataset's file list and sizes,
e.g. ``Set5-3f9a2c1d``; the built-in ``sample`` and ``div2k-like`` keep their names), written by the runner into
every record. Two folders named alike never share an identity, so their records never mix (:func:`record_dataset`
reads it, also from older records).

**File names** (:func:`result_path`): ``<entry>__<track>__<key>__<fingerprint id>.json``, where the key
(:func:`result_key`) names the dataset identity, split and protocol, e.g.
``rlfn__psnr__Set5-3f9a2c1d.paper__cpu-1a2b3c4d.json`` or ``rlfn__psnr__DIV2K_valid-0b1c2d3e.valid.challenge__...``:
runs on other data, splits or protocols never overwrite each other.
A record that is not ``"ok"`` never replaces a good one: it is written beside it as ``<same stem>__failed.json`` (or
``__partial.json``), and :func:`iter_result_files` reads the good one only (:func:`write_record`).

**Splits** (:func:`split_of`, the one rule, :data:`SPLIT_RULE`): a record's ``split`` is ``"valid"``, ``"test"`` or
``None``; ``eval --split`` sets it, else the dataset folder's name does (the human part of an identity: its digest
never counts).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

import ntirekit
from ntirekit.core.device import fingerprint_id
from ntirekit.core.errors import NtirekitError
from ntirekit.core.text import clean_text, clip


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
    lines = clean_text(str(error)).strip().splitlines()            # cleaned once: then only folded and cut
    if isinstance(error, BaseException):
        line = f"{clean_text(type(error).__name__)}: {lines[0] if lines else ''}".rstrip(": ")
    elif lines:
        line = lines[0]
    else:
        return "failed"
    return clip(" ".join(line.split()), 1000)


def failure(entry: str, track: str, device: dict[str, Any], error: BaseException | str, **fields: Any) -> dict[str, Any]:
    """A failed result record; ``error`` is reduced to one line (:func:`error_line`)."""
    rec = record(entry, track, device, **fields)
    rec.update(status="failed", error=error_line(error))
    return rec


#: How a dataset says which split it is (also in ``ntirekit eval --help`` and ``leaderboard --help``).
SPLIT_RULE = ("a PSNR counts as val or test when its record's split says so (eval --split), else when the dataset "
              "folder's name contains 'valid'/'val'/'validation' or 'test' as a word (DIV2K_valid_HR: val; Set5, "
              "sample: neither)")
_VALID = {"valid", "val", "validation"}
#: the statuses written beside a good record instead of over it
NOT_OK_SUFFIXES = ("failed", "partial")


#: hex digits of the content digest in a dataset identity (``Set5-3f9a2c1d``)
DIGEST_CHARS = 8
_IDENTITY = re.compile(rf"^(?P<name>.+)-(?P<digest>[0-9a-f]{{{DIGEST_CHARS}}})$")


def human_name(identity: Any) -> str:
    """The human part of a dataset identity (``Set5`` of ``Set5-3f9a2c1d``); a plain name is returned as is."""
    match = _IDENTITY.match(str(identity))
    return match.group("name") if match else str(identity)


def record_dataset(rec: Mapping[str, Any]) -> str | None:
    """The identity of the dataset a record was measured on: its ``dataset`` field, else (an older record, or one
    written by hand) the name of its ``options.data``; None when it says neither."""
    dataset = rec.get("dataset")
    if isinstance(dataset, str) and dataset:
        return dataset
    data = (rec.get("options") or {}).get("data") if isinstance(rec.get("options"), Mapping) else None
    return _slug(data) if data else None


def split_of(text: Any) -> str | None:
    """``"valid"`` or ``"test"`` when ``text`` (a split or dataset name) says so by :data:`SPLIT_RULE`, else None."""
    if not text:
        return None
    tokens = set(re.split(r"[^a-z0-9]+", human_name(text).lower()))
    if tokens & _VALID:
        return "valid"
    return "test" if "test" in tokens else None


def _slug(text: Any, limit: int = 32) -> str:
    name = Path(str(text).rstrip("/\\")).name or str(text)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:limit] or "data"


def _data_key(dataset: str) -> str:
    """A dataset identity as a file-name part: its name slugged (and cut), its digest kept whole."""
    match = _IDENTITY.match(dataset)
    if match is None:
        return _slug(dataset)
    return f"{_slug(match.group('name'))}-{match.group('digest')}"


def result_key(options: Mapping[str, Any], dataset: str | None = None) -> str:
    """The short dataset/split/protocol key of a record's file name: the ``dataset`` identity (else the name of
    ``options["data"]``), ``options["split"]`` and ``options["protocol"]``: ``Set5-3f9a2c1d.paper``,
    ``DIV2K_valid-0b1c2d3e.valid.challenge``; "" when none is known."""
    data = _data_key(dataset) if dataset else (_slug(options["data"]) if options.get("data") else "")
    parts = [data, options.get("split") or "", options.get("protocol") or ""]
    return ".".join(p for p in parts if p)


def result_path(out_dir: str | os.PathLike, entry: str, track: str, device: dict[str, Any], key: str = "") -> Path:
    """``OUT/<entry>__<track>__<key>__<fingerprint id>.json`` (no key part when ``key`` is ""): the name says what,
    which track, on which data, split and protocol (:func:`result_key`) and on what device."""
    middle = f"__{key}" if key else ""
    return Path(out_dir) / f"{entry}__{track}{middle}__{fingerprint_id(device)}.json"


def record_path(out_dir: str | os.PathLike, rec: Mapping[str, Any]) -> Path:
    """Where :func:`write_record` puts a good ``rec`` (its key from its ``options``)."""
    dataset = rec.get("dataset") if isinstance(rec.get("dataset"), str) else None
    return result_path(out_dir, rec["entry"], rec["track"], rec["device"],
                       result_key(rec.get("options") or {}, dataset))


def beside(path: Path, status: str) -> Path:
    """The file a record of ``status`` (not ok) goes to when a good record holds ``path``."""
    return path.with_name(f"{path.stem}__{status}.json")


def write_record(out_dir: str | os.PathLike, rec: Mapping[str, Any]) -> Path:
    """Write ``rec`` at :func:`record_path`; a record that is not ok goes :func:`beside` a good one instead of over
    it, and a good one clears the failed/partial files beside it. Returns the path written."""
    path = record_path(out_dir, rec)
    status = str(rec.get("status"))
    if status != "ok":
        try:
            if read_result(path).get("status") == "ok":
                return write_json_atomic(beside(path, status if status in NOT_OK_SUFFIXES else "failed"), rec)
        except ResultError:
            pass
        return write_json_atomic(path, rec)
    write_json_atomic(path, rec)
    for suffix in NOT_OK_SUFFIXES:
        beside(path, suffix).unlink(missing_ok=True)
    return path


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
    """Files given directly, plus every ``*.json`` inside given folders (sorted; a failed/partial record beside a
    good one is left out)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(_preferred(sorted(p.glob("*.json"))) if p.is_dir() else [p])
    return files


def _preferred(files: list[Path]) -> list[Path]:
    """``files`` less each failed/partial record written beside a good one (:func:`write_record`)."""
    names = {f.name for f in files}
    return [f for f in files if not any(f.stem.endswith(f"__{s}") and f.name[:-len(f"__{s}.json")] + ".json" in names
                                        for s in NOT_OK_SUFFIXES)]


@dataclass(frozen=True)
class TimingCut:
    """How a record's timing was cut short (:func:`timing_cut`); false for a full measurement."""

    quick: bool          #: the record says ``"quick": true`` (any true value)
    images: Any = None   #: ``options.extra.images``: timed on the first N inputs (None when not)
    crop: Any = None     #: ``options.extra.crop``: timed on centre crops of at most CROPxCROP (None when not)

    def __bool__(self) -> bool:
        return self.quick or self.images is not None or self.crop is not None


def timing_cut(record: Mapping[str, Any]) -> TimingCut:
    """The one detector of a quick run (``"quick": true``, or timed on part of the inputs or on crops of them:
    ``options.extra.images`` / ``options.extra.crop``), for the leaderboard (:func:`ntirekit.rank.timing.quick_run`)
    and for ``pack`` (:func:`ntirekit.pack.packer.quick_conditions`), each of which words it its own way."""
    options = record.get("options") if isinstance(record.get("options"), Mapping) else {}
    extra = options.get("extra") if isinstance(options.get("extra"), Mapping) else {}
    return TimingCut(quick=bool(record.get("quick")), images=extra.get("images") or None,
                     crop=extra.get("crop") or None)
