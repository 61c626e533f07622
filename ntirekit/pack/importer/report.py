"""The import report: one row per team (imported, skipped, loads strictly, failed) and the command that evaluates
them all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tabulate import tabulate

#: ``EntryError: `` and similar type prefixes that :func:`ntirekit.core.records.failure` puts before a kit error's message
_TYPE_PREFIX = re.compile(r"^(EntryError|WeightsError|MissingDependency|NeedsCuda|EntryFailed): ")


def status_of(record: dict[str, Any] | None) -> str:
    """``imported`` (not checked), ``loads strictly``, ``loads (strict=False: ...)`` or ``failed: reason``."""
    if record is None:
        return "imported"
    if record.get("status") != "ok":
        return "failed: " + _TYPE_PREFIX.sub("", str(record.get("error", "failed")))
    parts = []
    if "missing" in record or "unexpected" in record:
        parts.append(f"loads with strict=False as the harness does: {len(record.get('missing', []))} missing, "
                     f"{len(record.get('unexpected', []))} unexpected keys")
    else:
        parts.append("loads strictly")
    if record.get("unwrapped"):
        parts.append(f"unwrapped {record['unwrapped']}")
    if record.get("build"):
        parts.append("built on CPU (CUDA constructor)")
    return "; ".join(parts)


def rows(teams: list[Any], skipped: dict[int, str], records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per team id (sorted): ``team``, ``name``, ``status``, and for a non-strict load its
    ``missing``/``unexpected`` keys (the check runs each team's code in the jail: its verdict, never a figure;
    ``ntirekit profile`` counts an imported entry on its exported graph)."""
    out = []
    for plan in teams:
        rec = records.get(plan.name)
        row = {"team": plan.team, "name": plan.name, "status": status_of(rec)}
        for key in ("missing", "unexpected", "unwrapped", "build"):
            if rec and rec.get(key):
                row[key] = rec[key]
        out.append(row)
    out += [{"team": team, "name": "", "status": f"skipped: {reason}"} for team, reason in skipped.items()]
    return sorted(out, key=lambda r: r["team"])


def _cut(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def pip_line(packages: list[str]) -> str:
    """The one line an organizer pastes to install every missing package (nothing is installed by the kit)."""
    return f"missing third-party packages: pip install {' '.join(packages)}" if packages else ""


def render(table: list[dict[str, Any]], out_dir: str | Path, missing: list[str] | None = None) -> str:
    """The report as text: the table, the keys non-strict loads left, the command to evaluate every entry and, last,
    one ``pip install`` line naming every missing third-party package (``missing``)."""
    body = tabulate([[r["team"], r["name"], _cut(r["status"])] for r in table], headers=["team", "name", "status"],
                    tablefmt="simple", disable_numparse=True)
    lines = [body]
    for r in table:
        for key in ("missing", "unexpected"):
            if r.get(key):
                lines.append(f"team {r['team']:02d} {key} keys: {', '.join(r[key])}")
    imported = sum(1 for r in table if not r["status"].startswith("skipped"))
    lines.append(f"{imported} imported, {len(table) - imported} skipped"
                 + (f", {sum(1 for r in table if r['status'].startswith('loads strictly'))} load strictly"
                    if any(r["status"] != "imported" for r in table if not r["status"].startswith("skipped"))
                    else " (--check builds and loads each)"))
    lines.append(f"evaluate them all: ntirekit eval --entries {out_dir} --track overall")
    if missing:
        lines.append(pip_line(missing))
    return "\n".join(lines)
