#!/usr/bin/env python
"""Runtime and peak memory of each baseline's exported graph against its eager module, side by side in one run.

Each entry is exported (:func:`ntirekit.graph.export.export_graph`, on the CPU, heights and widths from ``--size``
to twice it), read back (:func:`ntirekit.graph.read.read_graph`) and wrapped as the organizer runs it
(:class:`ntirekit.eval.graph_side.GraphModel`); then every eager module and every graph is timed in **one**
interleaved run of the robust timer (:func:`ntirekit.eval.pipeline.time_entries`: the same inputs, the same clock
drift for all), and the peak memory of each is measured on the same inputs (:func:`ntirekit.eval.pipeline.memory_of`:
``torch.cuda.max_memory_allocated`` on CUDA, the storage estimate on the CPU). Printed per entry: medians, the ratio
graph/eager, peak memory of both, and whether their outputs on the device are bit-identical (where they are not, the
largest difference)::

    .venv/bin/python benchmarks/graph_runtime.py                                   # CPU, 3 baselines, 128x128
    .venv/bin/python benchmarks/graph_runtime.py --device cuda --size 256 --images 3 --json graph.json

Random weights (neither figure depends on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENTRIES = ("imdn_baseline", "rfdn", "rlfn_ntire")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", nargs="+", default=list(DEFAULT_ENTRIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=128, help="square LR input size in pixels (default 128)")
    parser.add_argument("--images", type=int, default=2, help="how many random inputs (default 2)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads while timing")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import torch

    from ntirekit.core.device import resolve_device
    from ntirekit.core.registry import discover
    from ntirekit.core.spec import input_contract
    from ntirekit.eval.graph_side import GraphModel
    from ntirekit.eval.pipeline import memory_of, measured_form, time_entries
    from ntirekit.graph.export import export_graph
    from ntirekit.graph.read import read_graph

    device = resolve_device(args.device)
    registry = discover()
    torch.manual_seed(0)
    models: dict[str, Any] = {}
    inputs: dict[str, list[Any]] = {}
    how: dict[str, dict[str, Any]] = {}
    for name in args.entries:
        entry = registry[name]
        contract = input_contract(entry)
        model = entry.load(pretrained=False)
        measured_form(model)
        side = contract.padded(args.size, args.size)
        shapes = [(1, 3, *side), (1, 3, *contract.padded(2 * args.size, 2 * args.size))]
        exported = export_graph(model, shapes, contract.multiple)
        graph_model = GraphModel(read_graph(exported.data))
        how[name] = {"dynamic": exported.dynamic, "programs": exported.programs}
        generator = torch.Generator().manual_seed(1)
        xs = [(torch.rand((1, 3, *side), generator=generator) * entry.spec.data_range).to(device)
              for _ in range(args.images)]
        for key, module in ((f"{name}/eager", model), (f"{name}/graph", graph_model)):
            models[key] = module.to(device)
            inputs[key] = xs
    with torch.no_grad():
        for name in args.entries:
            pairs = [(models[f"{name}/eager"](x), models[f"{name}/graph"](x)) for x in inputs[f"{name}/eager"]]
            how[name]["identical"] = all(torch.equal(a, b) for a, b in pairs)
            how[name]["max_abs_diff"] = max(float((a - b).abs().max()) for a, b in pairs)
    stats = time_entries(models, inputs, timer="robust", device=device, warmup=args.warmup, repeats=args.repeats,
                         threads=args.threads)
    memory = {key: memory_of(module, inputs[key], device) for key, module in models.items()}

    print(f"graph vs eager on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"{args.images} input(s) of {args.size}x{args.size}, robust timer (medians, one interleaved run), "
          f"peak memory {memory[next(iter(memory))]['memory_kind']}")
    print(f"{'entry':16s} {'export':8s} {'eager ms':>9s} {'graph ms':>9s} {'ratio':>6s} {'eager MiB':>10s} "
          f"{'graph MiB':>10s} {'ratio':>6s}  outputs")
    figures: dict[str, Any] = {"device": str(device), "size": args.size, "images": args.images, "entries": {}}
    for name in args.entries:
        e, g = stats[f"{name}/eager"]["median"], stats[f"{name}/graph"]["median"]
        me, mg = memory[f"{name}/eager"]["max_memory_mib"], memory[f"{name}/graph"]["max_memory_mib"]
        same = "identical" if how[name]["identical"] else f"max |diff| {how[name]['max_abs_diff']:.3g}"
        print(f"{name:16s} {'dynamic' if how[name]['dynamic'] else 'static':8s} {e:9.3f} {g:9.3f} {g / e:6.3f} "
              f"{me:10.2f} {mg:10.2f} {mg / me:6.3f}  {same}")
        figures["entries"][name] = {**how[name], "eager_ms": e, "graph_ms": g, "runtime_ratio": g / e,
                                    "eager_mib": me, "graph_mib": mg, "memory_ratio": mg / me,
                                    "memory_kind": memory[f"{name}/eager"]["memory_kind"]}
    ratios = [v["runtime_ratio"] for v in figures["entries"].values()]
    print(f"runtime graph/eager: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}..{max(ratios):.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
