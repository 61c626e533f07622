"""``ntirekit pack``: validate a submission folder, then write a zip with ``MANIFEST.json`` that ``check`` accepts.

Before anything is written the folder is checked as its format demands (:mod:`ntirekit.pack.formats`), and more:

- **esr-code**: the checkpoint is resolved the kit's way (in the folder, ``$NTIREKIT_WEIGHTS``, the cache; sha256
  checked) and packed under ``[weights].file`` (an absolute ``file`` is packed beside the spec and the packed
  ``entry.toml`` rewritten to point at it); then the packed files are staged in a temporary folder, the model is built
  from them, its weights loaded strictly and one forward pass checked for output size and finiteness.
- **esr-results / vqe-results**: ``readme.txt`` is written by the kit. Runtime and CPU/GPU are *measured* where the kit
  can: from a result JSON of ``ntirekit eval`` (``result=``: ``runtime_ms`` or ``runtime_ms_per_frame`` and the
  device it ran on), or, for ESR, from a timed run of an entry (``entry=``: robust timer, one warm-up, three repeats
  over up to five LR images of ``data``). A result of a CPU quick run (``"quick": true``, or timed on a subset or
  on crops of the inputs: ``options.extra.images``/``crop``) is refused: its runtime is not the runtime per image
  the readme states; ``allow_quick`` writes it anyway, with a warning and a note in the readme's description. An
  existing ``readme.txt`` that ``ntirekit eval --save-frames`` wrote from its measurement (it leaves
  :data:`~ntirekit.pack.formats.README_SOURCE` beside it) counts as measured; other values in an existing
  ``readme.txt`` are typed and used only when nothing was measured (a warning says so). Extra data and the
  description come from the options or the existing readme.

``final`` packs the final submission (a code submission without a factsheet is rejected; a warning otherwise). An
existing zip is never overwritten unless ``force``.

Hidden files, ``__pycache__``, ``__MACOSX`` and ``*.pyc`` are left out; anything else that does not belong to the
format is a problem to fix, never silently dropped. The written zip is checked again (exactly as ``check`` would)
before it takes its name; a zip that fails is deleted. Zips get the permissions of any file the user writes
(``0666`` less the umask, so ``0644`` under the usual umask), not a temporary file's ``0600``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ntirekit.core.device import resolve_device
from ntirekit.core.paths import user_file_mode
from ntirekit.core.records import ResultError, error_line, read_result, timing_cut
from ntirekit.core.registry import discover
from ntirekit.core.spec import Entry, EntryError, read_spec
from ntirekit.data.timing import DIV2K_LIKE, timing_images
from ntirekit.eval.pipeline import entry_inputs, time_entries
from ntirekit.core.trust import mark_untrusted
from ntirekit.eval.regress import figure
from ntirekit.measure.runtime import headline
from ntirekit.pack.checker import check_zip, load_isolated
from ntirekit.pack.formats import (MANIFEST, README, README_SOURCE, SPEC, detect_format, inside_path, parse_readme,
                                   readme_fields, render_readme, validate)
from ntirekit.pack.manifest import build_manifest
from ntirekit.pack.report import Report
from ntirekit.pack.safezip import Limits

#: already-compressed types, stored rather than deflated
STORED_SUFFIXES = frozenset({".png", ".zip", ".pdf"})
_JUNK_DIRS = frozenset({"__pycache__", "__MACOSX"})


@dataclass
class PackResult:
    report: Report
    zip_path: Path | None


def collect_files(src: Path, report: Report) -> dict[str, Path]:
    """``{posix relative path: file}`` of everything to pack under ``src`` (junk left out, links followed to files)."""
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d.startswith(".") or d in _JUNK_DIRS:
                continue
            if (here / d).is_symlink():
                report.warn("skipped-link", "linked folder left out (copy its files in)", str((here / d).relative_to(src)))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(src).as_posix()
            if name.startswith(".") or name.endswith(".pyc") or rel == MANIFEST:
                continue
            if not path.is_file():
                report.warn("skipped-link", "link to something that is not a file left out", rel)
                continue
            files[rel] = path.resolve()
    return files


def write_zip(tree: dict[str, Path], out: Path) -> Path:
    """Write ``tree`` as a zip at ``out`` atomically: sorted paths, fixed timestamps, regular-file modes only."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for rel in sorted(tree):
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                info.compress_type = (zipfile.ZIP_STORED if Path(rel).suffix.lower() in STORED_SUFFIXES
                                      else zipfile.ZIP_DEFLATED)
                size = tree[rel].stat().st_size
                info.file_size = size
                with open(tree[rel], "rb") as src, zf.open(info, "w", force_zip64=size > 2**31) as dst:
                    shutil.copyfileobj(src, dst, 2**20)
        os.chmod(tmp, user_file_mode())              # as any file the user writes, not mkstemp's 0600
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ---------------------------------------------------------------------------------------------------------- code

def _stage_code(src: Path, tree: dict[str, Path], tmp: Path, report: Report) -> Any:
    """Add the checkpoint to ``tree`` when it lives outside the folder; the spec, or None when it cannot be read."""
    if SPEC not in tree:
        return None
    try:
        spec = read_spec(src)
    except EntryError:
        return None                                          # validation reports it
    if spec.weights is None:
        return spec
    rel = inside_path(spec.weights.file)
    if rel is not None and rel in tree:
        return spec
    try:
        path = Entry(spec, src).weights_path(download=False)
    except EntryError as exc:
        report.error("missing-weights", str(exc), SPEC)
        return spec
    assert path is not None
    if rel is None:
        report.error("weights-path", f"[weights].file {spec.weights.file!r} is not a path inside the entry", SPEC)
        return spec
    tree[rel] = path                       # found outside the folder ($NTIREKIT_WEIGHTS, the cache): packed inside
    return spec


def _probe_code(tree: dict[str, Path], tmp: Path, report: Report) -> None:
    """Build the model from exactly the files to be packed, load its weights strictly, run one forward pass."""
    stage = tmp / "stage"
    for rel, path in tree.items():
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    mark_untrusted(stage)
    try:
        spec = read_spec(stage)
    except Exception as exc:  # noqa: BLE001 - a broken spec is a problem to report
        report.error("load-failed", f"the entry cannot be read: {error_line(exc)}")
        return
    load_isolated(spec, stage, report)              # the entry's code runs in the jail only


# ---------------------------------------------------------------------------------------------------------- results

def quick_conditions(rec: dict[str, Any]) -> str:
    """How a record's timing was cut short ("" for a full measurement), in pack's words: a CPU quick run
    (``"quick": true``) or a timing on a subset or crops of the inputs (``options.extra.images`` / ``crop``; the
    detector is :func:`ntirekit.core.records.timing_cut`, the leaderboard's)."""
    cut = timing_cut(rec)
    parts = [f"the first {cut.images} inputs" if cut.images else "",
             f"centre crops of at most {cut.crop}x{cut.crop}" if cut.crop else ""]
    said = ", ".join(p for p in parts if p)
    if cut.quick:
        return "a CPU quick run" + (f" ({said})" if said else "")
    return f"a timing on {said}" if said else ""


def _measured_from_result(path: str | Path, fmt: str, report: Report, allow_quick: bool = False) -> dict[str, Any]:
    try:
        rec = read_result(path)
    except ResultError as exc:
        report.error("bad-result", str(exc))
        return {}
    if rec.get("status") != "ok":
        report.error("bad-result", f"{path} records a failed run ({rec.get('error', '')})")
        return {}
    quick = quick_conditions(rec)
    if quick and not allow_quick:
        report.error("quick-result", f"{path} is {quick}: its runtime is not the runtime per image readme.txt states "
                                     "(time it with 'ntirekit eval --track runtime --full', or on the GPU; "
                                     "--allow-quick writes it anyway, with a warning)")
        return {}
    if quick:
        report.warn("quick-result", f"readme.txt's runtime comes from {quick} of {Path(path).name} (--allow-quick): "
                                    "not the challenge's runtime per image; its description says so")
    keys = ("runtime_ms_per_frame", "runtime_ms") if fmt == "vqe-results" else ("runtime_ms",)
    ms = next((figure(rec, k) for k in keys if figure(rec, k) is not None), None)
    out: dict[str, Any] = {}
    if ms is None:
        report.error("bad-result", f"{path} holds no runtime ({' or '.join(keys)}): take it from a runtime or "
                                   "overall track run")
    else:
        out["runtime_s"] = ms / 1000.0
    kind = (rec.get("device") or {}).get("kind")
    if kind in ("cpu", "cuda"):
        out["cpu"] = 1 if kind == "cpu" else 0
    if quick and out:
        out["quick_note"] = f"runtime from {quick}, not the full measurement"
    return out


def _measured_readme(folder: Path | None, typed: dict[str, Any]) -> str:
    """The record an existing readme.txt was written from by ``eval --save-frames`` ("" when typed): its
    :data:`README_SOURCE` must say the same runtime and CPU/GPU as the readme."""
    if folder is None or not (folder / README_SOURCE).is_file():
        return ""
    try:
        source = json.loads((folder / README_SOURCE).read_text(encoding="utf-8"))
        same = all(source["readme"].get(k) == typed.get(k) for k in ("runtime_s", "cpu"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    return str(source.get("record") or "eval") if same else ""


def _measured_by_timing(entry_name: str, data: str | Path | None, scale: int | None, device: str,
                        report: Report) -> dict[str, Any]:
    try:
        entry = discover()[entry_name]
        dev = resolve_device(device)
        images = timing_images(str(data) if data else DIV2K_LIKE, scale or entry.spec.scale)[:5]
        model = entry.load(device=dev)
        stats = time_entries({entry.name: model}, {entry.name: entry_inputs(entry, None, dev, images)},
                             timer="robust", warmup=1, repeats=3, device=dev)[entry.name]
    except Exception as exc:  # noqa: BLE001 - any failure (EntryError, DataError, ...) is a problem to report
        report.error("timing-failed", f"timing {entry_name} failed: {type(exc).__name__}: {exc}")
        return {}
    report.info["timed"] = {"entry": entry_name, "images": len(images), "device": str(dev)}
    return {"runtime_s": headline(stats) / 1000.0, "cpu": 0 if dev.type == "cuda" else 1}


def _stage_readme(tree: dict[str, Path], fmt: str, tmp: Path, report: Report, *, result: str | Path | None,
                  entry: str | None, data: str | Path | None, scale: int | None, device: str,
                  extra_data: int | None, description: str | None, allow_quick: bool = False,
                  folder: Path | None = None) -> None:
    typed: dict[str, Any] = {}
    if README in tree:
        typed, _problems = parse_readme(tree[README].read_text(encoding="utf-8", errors="replace"), fmt)
    measured: dict[str, Any] = {}
    if result is not None:
        measured = _measured_from_result(result, fmt, report, allow_quick)
    elif entry is not None:
        if fmt != "esr-results":
            report.error("timing-failed", "a timed run (--entry) measures ESR entries; for VQE give --result from "
                                          "'ntirekit eval --track vqe'")
        else:
            measured = _measured_by_timing(entry, data, scale, device, report)
    quick_note = measured.pop("quick_note", "")
    values = {**typed, **measured}
    if extra_data is not None:
        values["extra_data"] = int(extra_data)
    if description is not None:
        values["description"] = description
    if quick_note:
        values["description"] = f"{values.get('description', '')} [{quick_note}]".strip()
    source = _measured_readme(folder, typed) if not measured else ""
    if source:
        report.info["readme_source"] = f"runtime and CPU/GPU of readme.txt measured by ntirekit eval ({source})"
    elif not measured and {"runtime_s", "cpu"} & set(typed):
        report.warn("typed-readme", "runtime and CPU/GPU come from a readme.txt typed by hand, not from a "
                                    "measurement (give --result RESULT.json from 'ntirekit eval', or --entry NAME "
                                    "to time it)")
    report.info["readme"] = values
    missing = [f.key for f in readme_fields(fmt) if f.key not in values]
    if not missing:
        path = tmp / "readme" / README
        path.parent.mkdir()
        path.write_text(render_readme(values, fmt), encoding="utf-8")
        tree[README] = path
    elif README not in tree and values:
        flags = {"runtime_s": "--result RESULT.json or --entry NAME", "cpu": "--result RESULT.json or --entry NAME",
                 "extra_data": "--extra-data 0|1", "description": "--description TEXT"}
        report.info["readme_missing"] = f"readme.txt lacks {', '.join(missing)}: give " + ", ".join(
            dict.fromkeys(flags[m] for m in missing))
    # otherwise the folder's own readme (or its absence) is validated and its missing fields reported


# ---------------------------------------------------------------------------------------------------------- pack

def pack(src: str | os.PathLike, fmt: str = "auto", out: str | os.PathLike | None = None, *,
         data: str | Path | None = None, scale: int | None = None, result: str | Path | None = None,
         entry: str | None = None, device: str = "auto", extra_data: int | None = None,
         description: str | None = None, limits: Limits = Limits(), final: bool = False,
         force: bool = False, allow_quick: bool = False) -> PackResult:
    """Validate the folder ``src`` as ``fmt`` and write the zip (default ``<entry name or folder name>.zip``).

    Returns the report and the zip's path (None when the folder was REJECTED: nothing is written then).
    """
    src = Path(src)
    report = Report(source=str(src))
    if not src.is_dir():
        report.error("not-found", f"{src} is not a folder")
        return PackResult(report, None)
    tree = collect_files(src, report)
    if fmt == "auto":
        fmt = detect_format(tree)
        if fmt is None:
            report.error("unknown-format", "cannot tell the format from the files: pass --format "
                                           "(esr-code | esr-results | vqe-results)")
            return PackResult(report, None)
    report.format = fmt
    with tempfile.TemporaryDirectory(prefix="ntirekit-pack-") as tmp_name:
        tmp = Path(tmp_name)
        if fmt == "esr-code":
            _stage_code(src, tree, tmp, report)
        else:
            _stage_readme(tree, fmt, tmp, report, result=result, entry=entry, data=data, scale=scale, device=device,
                          extra_data=extra_data, description=description, allow_quick=allow_quick, folder=src)
        spec = validate(tree, fmt, report, data=data, scale=scale, final=final)
        if fmt == "esr-code" and spec is not None and report.ok:
            _probe_code(tree, tmp, report)
        if not report.ok:
            return PackResult(report, None)
        name = spec.name if spec is not None else src.resolve().name
        out_path = Path(out) if out is not None else Path(f"{name}.zip")
        if out_path.exists() and not force:
            report.error("zip-exists", f"{out_path} exists: not overwritten (--force to replace it, --out to write "
                                       "elsewhere)")
            return PackResult(report, None)
        fields: dict[str, Any] = {"source": src.resolve().name}
        if spec is not None:
            fields["entry"] = spec.name
        if "readme" in report.info:
            fields["readme"] = report.info["readme"]
        manifest = build_manifest(tree, fmt, **fields)
        manifest_path = tmp / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        staged = out_path.with_name(f".{out_path.name}.checking.zip")   # an existing zip stays until this passes
        write_zip({**tree, MANIFEST: manifest_path}, staged)
    try:
        check = check_zip(staged, fmt, data=data, scale=scale, limits=limits, final=final)
        report.extend(Report(source=str(out_path), problems=check.problems))
        report.info.update(zip=str(out_path), files=check.info.get("files"), bytes=check.info.get("bytes"))
        if not check.ok:
            return PackResult(report, None)
        os.replace(staged, out_path)
    finally:
        staged.unlink(missing_ok=True)
    return PackResult(report, out_path)
