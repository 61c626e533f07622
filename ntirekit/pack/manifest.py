"""``MANIFEST.json``: what a packed zip holds (path, size, sha256 of every file), its format and the kit version.

It lets ``check`` (and the organisers) prove that the zip holds exactly what ``pack`` validated: a file changed,
added or removed after packing is reported by name.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import ntirekit
from ntirekit.core.weights import sha256_of
from ntirekit.pack.formats import FORMATS, MANIFEST
from ntirekit.pack.report import Report

MANIFEST_VERSION = 1


def build_manifest(tree: Mapping[str, Path], fmt: str, **fields: Any) -> dict[str, Any]:
    """The manifest of ``tree`` (``{path in zip: local file}``), files sorted by path."""
    files = [{"path": rel, "size": tree[rel].stat().st_size, "sha256": sha256_of(tree[rel])}
             for rel in sorted(tree) if rel != MANIFEST]
    return {"manifest_version": MANIFEST_VERSION, "kit": "ntirekit", "kit_version": ntirekit.__version__,
            "format": fmt, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **fields, "files": files}


def read_manifest(path: Path, report: Report) -> dict[str, Any] | None:
    """The manifest at ``path``, or None with the reason in ``report``."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.error("manifest-invalid", f"not readable JSON ({exc})", MANIFEST)
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
            and isinstance(f.get("size"), int) for f in files):
        report.error("manifest-invalid", "needs a 'files' list of {path, size, sha256}", MANIFEST)
        return None
    if manifest.get("format") not in FORMATS:
        report.error("manifest-invalid", f"'format' must be one of {', '.join(FORMATS)}", MANIFEST)
        return None
    return manifest


def verify_manifest(manifest: Mapping[str, Any], tree: Mapping[str, Path], report: Report,
                    members: Iterable[str] = ()) -> None:
    """Every listed file present with its size and sha256, and nothing unlisted.

    ``members`` are all paths the archive names: a listed file that the archive holds but that could not be
    extracted (already reported as corrupt or unsafe) is not reported a second time.
    """
    named = set(members) | set(tree)
    listed = {f["path"]: f for f in manifest["files"]}
    for rel, entry in sorted(listed.items()):
        if rel not in tree:
            if rel not in named:
                report.error("manifest-mismatch", "listed in MANIFEST.json but not in the archive", rel)
            continue
        path = tree[rel]
        if path.stat().st_size != entry["size"]:
            report.error("manifest-mismatch", f"size {path.stat().st_size:,} differs from the manifest's "
                                              f"{entry['size']:,}", rel)
        elif sha256_of(path) != entry["sha256"].lower():
            report.error("manifest-mismatch", "sha256 differs from MANIFEST.json (changed after packing)", rel)
    for rel in sorted(set(tree) - set(listed) - {MANIFEST}):
        report.error("manifest-mismatch", "in the archive but not listed in MANIFEST.json (added after packing)", rel)
