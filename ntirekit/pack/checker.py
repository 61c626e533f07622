"""``ntirekit check``: a verdict on a submission zip (ACCEPTED or REJECTED) and every problem in it.

The archive is vetted member by member (:mod:`ntirekit.pack.safezip`), extracted into a fresh temporary folder only,
its ``MANIFEST.json`` verified, and its content checked for its format (:mod:`ntirekit.pack.formats`). Checkpoints are
read with ``weights_only=True`` only. Submitted code is never imported by ``check`` unless ``load=True``, and then only
in the jail (:func:`ntirekit.eval.isolate.call_isolated`), which builds the model, loads its weights strictly and runs
one small forward pass.

Any unexpected failure of the checker itself becomes a ``check-error`` problem: the caller always gets a report,
never a traceback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ntirekit.core.spec import Entry
from ntirekit.core.trust import mark_untrusted
from ntirekit.eval.isolate import TIMEOUT_S, call_isolated
from ntirekit.eval.probe import load_probe
from ntirekit.pack.formats import FORMATS, MANIFEST, code_root, detect_format, validate
from ntirekit.pack.manifest import read_manifest, verify_manifest
from ntirekit.pack.report import Report
from ntirekit.pack.safezip import Limits, extract_members, member_parts, open_zip, vet_members


def _inspect(path: Path, dest: Path, fmt: str, report: Report, *, data: str | Path | None, scale: int | None,
             limits: Limits, final: bool = False) -> tuple[Path, Any] | None:
    """Extract into ``dest`` and run every check; ``(submission root inside dest, EntrySpec or None)``."""
    zf = open_zip(path, report)
    if zf is None:
        return None
    with zf:
        members = vet_members(zf, report, limits)
        files = [i for i in zf.infolist() if not i.is_dir()]
        names = {"/".join(member_parts(i.filename)) for i in files}
        report.info.update(files=len(files), bytes=sum(i.file_size for i in files))
        tree = extract_members(zf, members, dest, report, limits)
    manifest = read_manifest(tree[MANIFEST], report) if MANIFEST in tree else None
    if manifest is not None:
        verify_manifest(manifest, tree, report, names)
        report.info["kit_version"] = manifest.get("kit_version")
    elif MANIFEST not in names:
        report.warn("no-manifest", "no MANIFEST.json: not packed by 'ntirekit pack' (the content is still checked)")
    declared = manifest.get("format") if manifest else None
    if fmt == "auto":
        fmt = declared or detect_format(names)
    elif fmt not in FORMATS:
        report.error("unknown-format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        return None
    elif declared and declared != fmt:
        report.error("format-mismatch", f"MANIFEST.json says {declared}, checked as {fmt}")
    if fmt is None:
        report.error("unknown-format", "cannot tell the format from the file names: pass --format "
                                       f"({' | '.join(FORMATS)})")
        return None
    report.format = fmt
    root, content = dest, dict(tree)
    broken = names - set(tree)
    if fmt == "esr-code":
        prefix = code_root(names)
        if prefix:
            content = {k[len(prefix):]: v for k, v in tree.items() if k.startswith(prefix)}
            broken = {k[len(prefix):] for k in broken if k.startswith(prefix)}
            root = dest / prefix.rstrip("/")
    spec = validate(content, fmt, report, data=data, scale=scale, broken=broken, final=final)
    return root, spec


def check_zip(path: str | os.PathLike, fmt: str = "auto", *, data: str | Path | None = None,
              scale: int | None = None, limits: Limits = Limits(), load: bool = False,
              work_dir: str | os.PathLike | None = None, timeout_s: float = 300.0,
              memory_mb: int | None = 4096, final: bool = False) -> Report:
    """Check the submission zip at ``path``; extraction happens in a temporary folder (below ``work_dir`` when
    given) that is removed afterwards.

    ``load`` (ESR code only) also builds the model and loads its weights strictly in an isolated child process.
    ``final`` checks it as the final submission (a code submission without a factsheet is rejected).
    """
    report = Report(source=str(path))
    try:
        with tempfile.TemporaryDirectory(prefix="ntirekit-check-", dir=work_dir) as tmp:
            found = _inspect(Path(path), Path(tmp), fmt, report, data=data, scale=scale, limits=limits, final=final)
            if load and found is not None and report.format == "esr-code":
                root, spec = found
                if spec is None:
                    report.warn("not-loaded", "the model was not loaded because of the problems above")
                else:
                    load_isolated(spec, root, report, timeout_s=timeout_s, memory_mb=memory_mb)
    except Exception as exc:  # noqa: BLE001 - a report, never a traceback
        report.error("check-error", f"the checker failed: {type(exc).__name__}: {exc}")
    return report


def unpack(path: str | os.PathLike, dest: str | os.PathLike, fmt: str = "auto", *, limits: Limits = Limits(),
           data: str | Path | None = None, scale: int | None = None) -> tuple[Report, Path | None]:
    """Check a submission zip and, when ACCEPTED, leave it extracted in ``dest`` (a new or empty folder) for
    evaluation; ``dest`` is marked untrusted so that its entries run isolated by default.

    Returns ``(report, submission root)``; the root is None, and ``dest`` holds nothing but the marker, when the zip
    is REJECTED.
    """

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    mark_untrusted(dest)
    report = Report(source=str(path))
    try:
        with tempfile.TemporaryDirectory(prefix="ntirekit-unpack-", dir=dest) as tmp:
            found = _inspect(Path(path), Path(tmp), fmt, report, data=data, scale=scale, limits=limits)
            if found is None or not report.ok:
                return report, None
            for item in Path(tmp).iterdir():
                shutil.move(str(item), dest / item.name)
            root = dest / found[0].relative_to(tmp)
    except Exception as exc:  # noqa: BLE001
        report.error("check-error", f"the checker failed: {type(exc).__name__}: {exc}")
        return report, None
    return report, root


def load_isolated(spec: Any, root: Path, report: Report, *, timeout_s: float = TIMEOUT_S,
                  memory_mb: int | None = None) -> None:
    """Build the entry in ``root`` from ``spec`` in the jail, load its weights strictly and run one forward pass
    (:func:`ntirekit.eval.probe.load_probe`); a failure is a ``load-failed`` problem, the jail's kind in
    ``report.info["load_sandbox"]``. Used by ``check --load`` and by ``pack`` (on the files it is about to pack)."""
    entry = Entry(spec, root)
    rec = call_isolated(entry, load_probe, timeout_s=timeout_s, memory_mb=memory_mb)
    report.info["load_sandbox"] = rec.get("sandbox")
    if rec.get("status") != "ok":
        report.error("load-failed", f"building the model and loading its weights strictly failed: {rec.get('error')}")
