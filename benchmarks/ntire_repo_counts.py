#!/usr/bin/env python
"""Counts of every team imported from an NTIRE ESR repository, next to the organisers' ``results.txt``.

First import the repository (no map needed), then count each entry in its own process with
``ntirekit profile NAME --json`` (which also shows that stdout holds only the JSON, whatever a team's code prints)::

    .venv/bin/ntirekit import-ntire ../NTIRE2024_ESR --out /tmp/imp24 --check
    .venv/bin/python benchmarks/ntire_repo_counts.py ../NTIRE2024_ESR /tmp/imp24 [--json counts.json]

Per team it prints params [M], fvcore FLOPs [G], activations [M] and #conv on a 1x3x256x256 input (the official
``test_demo.py``'s input), and, where ``results.txt`` has the team's row, the organisers' figures and whether each
equals ours at the precision ``results.txt`` prints (params 3 decimals, FLOPs and activations 2, #conv exact).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: results.txt column -> (our profile key, scale, printed format)
COLUMNS = {"Params [M]": ("params", 1e6, "{:.3f}"), "FLOPs [G]": ("macs_fvcore", 1e9, "{:.2f}"),
           "Acts [M]": ("activations", 1e6, "{:.2f}"), "Conv": ("convs", 1, "{:d}")}


def official(repo: Path) -> dict[int, dict[str, str]]:
    """The rows of ``repo/results.txt`` by team id (the number before the first ``_`` of the model name)."""
    path = repo / "results.txt"
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    header = [h.strip() for h in lines[0].split("\t")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")]
        row = dict(zip(header, cells))
        head = row.get("Model", "").split("_")[0]
        if head.lstrip("-").isdigit():
            rows[int(head)] = row
    return rows


def profile(name: str, entries: Path, timeout_s: int) -> dict[str, Any]:
    """``ntirekit profile NAME --json`` in a child process; ``{"error": ...}`` when it fails."""
    cmd = [str(REPO / ".venv" / "bin" / "ntirekit"), "profile", name, "--entries", str(entries), "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1].removeprefix("Error: ")}
    return json.loads(done.stdout)                   # raises when anything but the JSON reached stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path, help="the NTIRE ESR repository checkout (for results.txt)")
    parser.add_argument("imported", type=Path, help="the folder import-ntire wrote")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per entry")
    parser.add_argument("--json", type=Path, default=None, help="also write every profile to this file")
    args = parser.parse_args()

    theirs = official(args.repo)
    folders = sorted(p.parent for p in args.imported.glob("*/entry.toml"))
    profiles: dict[str, Any] = {}
    equal = compared = 0
    print(f"{'team':>4}  {'entry':20s} " + " ".join(f"{c:>15s}" for c in COLUMNS))
    for folder in folders:
        name = folder.name
        result = profile(name, args.imported, args.timeout)
        profiles[name] = result
        head = name.split("_")[0].removeprefix("team").removeprefix("baseline")
        team = (-1 if name.startswith("baseline") else 1) * int(head) if head.isdigit() else None
        if "error" in result:
            print(f"{team!s:>4}  {name:20s} failed: {result['error']}", flush=True)
            continue
        row = theirs.get(team) if team is not None else None
        cells = []
        for column, (key, scale, fmt) in COLUMNS.items():
            value = result.get(key)
            ours = "n/a" if value is None else fmt.format(value / scale if scale != 1 else int(value))
            if row and column in row:
                same = ours == fmt.format(float(row[column]) if fmt != "{:d}" else int(row[column]))
                equal += same
                compared += 1
                ours += ("=" if same else f"≠{row[column]}")
            cells.append(f"{ours:>15s}")
        print(f"{team!s:>4}  {name:20s} " + " ".join(cells), flush=True)
    print(f"\n{len(folders)} entries counted; results.txt has rows for {len(theirs)} team(s): "
          f"{equal} of {compared} figures equal at its printed precision")
    if args.json:
        args.json.write_text(json.dumps(profiles, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
