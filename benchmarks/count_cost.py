#!/usr/bin/env python
"""What counting an entry costs, as a multiple of one forward pass of the counting input (1x3x256x256).

Per entry, side by side in one process: the median of ``--repeats`` plain forwards (``inference_mode``, after one
warm-up), then :func:`ntirekit.measure.counts.count` as the efficiency tracks run it (one shape-only pass on a
meta-device copy + one fvcore trace shared by its MACs and activations), the same with ``cross_check=True`` (adds
torch's FlopCounterMode to the instrumented pass), and the way it was done before (the instrumented pass with the
cross-check, then one fvcore trace for the MACs and another for the activations). Besides the seconds it prints how
many forward calls of the model ran on real tensors (a forward pre-hook on the model that ignores meta tensors).

Measured on CPU (2 shared cores, load ~6-13; the forward itself varies by 2x between runs): count() 1.64x / 0.93x
/ 1.31x of one forward for imdn_baseline / rfdn / rlfn_ntire with 1 real forward call (the trace), against 2.26x /
1.76x / 2.69x and 2 real forward calls before.

    .venv/bin/python benchmarks/count_cost.py                          # the three 2022 baselines, CPU
    .venv/bin/python benchmarks/count_cost.py --entries rlfn_ntire span --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ntirekit.core.registry import discover
from ntirekit.measure import counts as C


def _real_forwards(model: nn.Module, fn: Callable[[], Any]) -> tuple[float, int]:
    """``(seconds, forward calls of ``model`` on non-meta inputs)`` of ``fn()``."""
    calls = [0]

    def pre(_mod: nn.Module, args: tuple) -> None:
        x = C._first_tensor(args)
        if x is not None and x.device.type != "meta":
            calls[0] += 1

    handle = model.register_forward_pre_hook(pre)
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start, calls[0]
    finally:
        handle.remove()


def _before(model: nn.Module) -> None:
    """The counting of the previous release: cross-checked pass, then two separate fvcore traces."""
    C._instrumented_pass(model, C.DEFAULT_SHAPE, torch_flops=True, detect=True)
    C.fvcore_analysis(model, C.DEFAULT_SHAPE).total()
    C.activations_fvcore(model, C.DEFAULT_SHAPE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", nargs="+", default=["imdn_baseline", "rfdn", "rlfn_ntire"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = discover()
    rows: dict[str, Any] = {}
    print(f"{'entry':14s} {'forward [s]':>11s} | {'count':>14s} | {'+cross-check':>14s} | {'before':>14s}   "
          "(seconds / multiple of one forward / real forward calls)")
    for name in args.entries:
        torch.manual_seed(0)
        model = registry[name].load(pretrained=False).eval()
        x = C.make_input(model)
        with torch.inference_mode():
            model(x)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        forward = statistics.median(times)
        figures = {"forward_s": forward}
        for label, fn in (("count", lambda: C.count(model, cross_check=False)),
                          ("count_cross_check", lambda: C.count(model, cross_check=True)),
                          ("before", lambda: _before(model))):
            seconds, calls = _real_forwards(model, fn)
            figures[label] = {"seconds": seconds, "ratio": seconds / forward, "real_forward_calls": calls}
        rows[name] = figures
        cells = [f"{figures[k]['seconds']:5.2f} {figures[k]['ratio']:4.2f}x {figures[k]['real_forward_calls']:2d}"
                 for k in ("count", "count_cross_check", "before")]
        print(f"{name:14s} {forward:11.3f} | {cells[0]:>14s} | {cells[1]:>14s} | {cells[2]:>14s}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
