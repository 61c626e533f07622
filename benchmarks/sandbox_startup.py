"""Start-up cost of the bubblewrap sandbox: the same child command with and without :func:`sandboxed_command`.

Each case runs the child to completion (``subprocess.run``) ``--repeats`` times, plain and sandboxed interleaved (so
that machine load falls on both alike), after one untimed warm-up of each (page cache); printed are the median and
the minimum wall time of each (ms), their difference and ratio. Cases: ``bwrap true`` (the sandbox alone), ``python -c
pass`` (the interpreter), ``python -c "import torch, ntirekit"`` (what an entry's child pays before its first image).

    python benchmarks/sandbox_startup.py               # 5 repeats
    python benchmarks/sandbox_startup.py --repeats 11 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from tabulate import tabulate

from ntirekit.eval.sandbox.bwrap import bwrap_problem, runtime_binds, sandboxed_command

CASES = {
    "true": ["true"],
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch, ntirekit'": [sys.executable, "-c", "import torch, ntirekit"],
}


def wall_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    problem = bwrap_problem()
    if problem:
        sys.exit(f"sandbox_startup: {problem}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ntirekit-bench-") as scratch:
        for label, argv in CASES.items():
            boxed = sandboxed_command(argv, binds=runtime_binds(), scratch=scratch)
            wall_ms(argv), wall_ms(boxed)
            plain, sandboxed = [], []
            for _ in range(args.repeats):
                plain.append(wall_ms(argv))
                sandboxed.append(wall_ms(boxed))
            p, s = statistics.median(plain), statistics.median(sandboxed)
            rows.append({"child": label, "plain_ms": round(p, 1), "sandboxed_ms": round(s, 1),
                         "plain_min_ms": round(min(plain), 1), "sandboxed_min_ms": round(min(sandboxed), 1),
                         "extra_ms": round(s - p, 1), "ratio": round(s / p, 2)})
    version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"median of {args.repeats} runs each, interleaved; {version}")
    print(tabulate(rows, headers="keys"))
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
