#!/usr/bin/env python
"""Run-to-run spread of the two runtime timers: the robust median against the official (ntire) mean.

Each run is a fresh Python process, as each official measurement was; runs of the two timers alternate
(ntire, robust, ntire, robust, ...) so that a slow phase of the machine hits both. Per timer and entry it prints the
per-run figures, their relative standard deviation (``ddof=1``) and max/min, and the runtime ratios between entries
with their own spread.

    .venv/bin/python benchmarks/runtime_spread.py                       # CPU, 5 runs, 3 crops of 64x64
    .venv/bin/python benchmarks/runtime_spread.py --device cuda --size 0 --images 6   # full DIV2K-like images on GPU
    .venv/bin/python benchmarks/runtime_spread.py --device cuda --size 0 --memory     # + max_memory_allocated
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENTRIES = ("imdn_baseline", "rfdn", "rlfn_ntire")


def child(args: argparse.Namespace) -> None:
    """One run of one timer over all entries; prints ``{entry: headline ms}`` as JSON on the last line."""
    sys.path.insert(0, str(REPO))
    import torch

    from ntirekit.core.device import resolve_device
    from ntirekit.core.registry import discover
    from ntirekit.data.sample import div2k_like_inputs
    from ntirekit.eval.pipeline import entry_inputs, memory_of, time_entries
    from ntirekit.measure.runtime import headline

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = div2k_like_inputs(count=args.images, seed=0)
    if args.size:
        images = [img[: args.size, : args.size] for img in images]
    registry = discover()
    models, inputs = {}, {}
    torch.manual_seed(0)
    for name in args.entries:
        entry = registry[name]
        models[name] = entry.load(pretrained=False, device=device)
        inputs[name] = entry_inputs(entry, None, device, images)
    stats = time_entries(models, inputs, timer=args.timer, device=device, warmup=args.warmup, repeats=args.repeats)
    out: dict[str, Any] = {name: headline(s) for name, s in stats.items()}
    if args.memory:
        out["__memory_mib"] = {name: memory_of(models[name], inputs[name], device)["max_memory_mib"]
                               for name in args.entries}
    print(json.dumps(out))


def spread(values: list[float]) -> tuple[float, float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / a.mean()) if a.size > 1 else 0.0, float(a.max() / a.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", nargs="+", default=list(DEFAULT_ENTRIES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=3, help="How many DIV2K-like images.")
    parser.add_argument("--size", type=int, default=64, help="Crop each image to SIZE x SIZE (0: full images).")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true",
                        help="Also the peak memory per entry in every process (CUDA: max_memory_allocated).")
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the raw figures here.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timer", default="robust", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    common = ["--device", args.device, "--images", str(args.images), "--size", str(args.size),
              "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--entries", *args.entries]
    if args.threads:
        common += ["--threads", str(args.threads)]
    if args.memory:
        common += ["--memory"]
    memory: list[dict[str, float]] = []
    runs: dict[str, list[dict[str, float]]] = {"ntire": [], "robust": []}
    started = time.perf_counter()
    for k in range(args.runs):
        for timer in ("ntire", "robust"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--timer", timer, *common]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                sys.exit(f"run {k + 1} ({timer}) failed:\n{proc.stderr[-2000:]}")
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            if "__memory_mib" in figures:
                memory.append(figures.pop("__memory_mib"))
            runs[timer].append(figures)
            print(f"run {k + 1}/{args.runs} {timer:6s}: "
                  + ", ".join(f"{n} {v:.2f} ms" for n, v in runs[timer][-1].items()), flush=True)
    elapsed = time.perf_counter() - started

    size = f"{args.size}x{args.size} crops" if args.size else "full images"
    print(f"\n{args.runs} runs per timer, {args.images} DIV2K-like {size}, device {args.device}"
          f"{f', {args.threads} threads' if args.threads else ''}; robust: warm-up {args.warmup}, "
          f"{args.repeats} repeats; {elapsed:.0f} s in all\n")
    header = f"{'entry':16s} | {'ntire mean [ms]':>16s} {'rel std':>8s} {'max/min':>8s} | " \
             f"{'robust median [ms]':>18s} {'rel std':>8s} {'max/min':>8s}"
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {"runs": runs, "entries": {}, "ratios": {}}
    for name in args.entries:
        row = [spread([r[name] for r in runs[t]]) for t in ("ntire", "robust")]
        summary["entries"][name] = {t: dict(zip(("mean", "rel_std", "max_over_min"), v))
                                    for t, v in zip(("ntire", "robust"), row)}
        print(f"{name:16s} | {row[0][0]:16.2f} {row[0][1]:8.1%} {row[0][2]:8.3f} | "
              f"{row[1][0]:18.2f} {row[1][1]:8.1%} {row[1][2]:8.3f}")
    base = args.entries[0]
    print(f"\nruntime ratios to {base} (per run, then mean, rel std, max/min over runs)")
    header = f"{'ratio':28s} | {'ntire':>8s} {'rel std':>8s} {'max/min':>8s} | {'robust':>8s} {'rel std':>8s} " \
             f"{'max/min':>8s}"
    print(header)
    print("-" * len(header))
    for name in args.entries[1:]:
        row = [spread([r[name] / r[base] for r in runs[t]]) for t in ("ntire", "robust")]
        summary["ratios"][f"{name}/{base}"] = {t: dict(zip(("mean", "rel_std", "max_over_min"), v))
                                               for t, v in zip(("ntire", "robust"), row)}
        print(f"{name + ' / ' + base:28s} | {row[0][0]:8.3f} {row[0][1]:8.1%} {row[0][2]:8.3f} | "
              f"{row[1][0]:8.3f} {row[1][1]:8.1%} {row[1][2]:8.3f}")
    if memory:
        print(f"\npeak memory [MiB] over {len(memory)} processes (mean, rel std, max/min)")
        summary["memory_mib"] = {"runs": memory, "entries": {}}
        for name in args.entries:
            mean, rel, ratio = spread([m[name] for m in memory])
            summary["memory_mib"]["entries"][name] = {"mean": mean, "rel_std": rel, "max_over_min": ratio}
            print(f"{name:16s} | {mean:10.2f} {rel:8.1%} {ratio:8.3f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
