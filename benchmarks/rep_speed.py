"""Training form vs deploy form of the re-parameterizable entries: runtime side by side.

For each entry with a deploy form (``ecbsr``, ``rlfn_rep``; or those named with ``--entries``), the training form
(every branch run) and the deploy form (after :func:`ntirekit.nn.rep.reparameterize_model`: one plain conv per block)
are timed with the kit's robust interleaved timer (:func:`ntirekit.measure.runtime.time_robust`: warm-up, then
round-robin repeats, median) on the same input, in eval mode under ``inference_mode``. Also printed: params, MACs
(2022 counter) and #conv of both forms, and the max |training - deploy| on the timing input.

    python benchmarks/rep_speed.py                       # CPU (or CUDA when present), 1x3x128x128, 1 thread
    python benchmarks/rep_speed.py --size 256 --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from tabulate import tabulate

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.registry import discover
from ntirekit.measure.counts import activations_and_convs, macs_ntire2022, params
from ntirekit.eval.pipeline import time_entries
from ntirekit.nn.rep import reparameterize_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", nargs="*", default=["ecbsr", "rlfn_rep"])
    parser.add_argument("--size", type=int, default=128, help="LR input side (pixels)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (fixed while timing)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    registry = discover()
    rows = []
    for name in args.entries:
        entry = registry[name]
        torch.manual_seed(0)
        train = entry.build().eval()
        deploy = reparameterize_model(copy.deepcopy(train)).eval()
        g = torch.Generator().manual_seed(0)
        x = (torch.rand(1, 3, args.size, args.size, generator=g) * entry.spec.data_range).to(device)
        train.to(device)
        deploy.to(device)
        with torch.inference_mode():
            diff = float((train(x) - deploy(x)).abs().max())
        stats = time_entries({"train": train, "deploy": deploy}, {"train": [x], "deploy": [x]}, timer="robust",
                             device=device, warmup=args.warmup, repeats=args.repeats, threads=args.threads)
        shape = (1, 3, 256, 256)
        count = {form: (params(m), macs_ntire2022(copy.deepcopy(m).to("meta"), shape),
                        activations_and_convs(copy.deepcopy(m).to("meta"), shape)[1])
                 for form, m in (("train", train), ("deploy", deploy))}
        t_ms, d_ms = stats["train"]["median"], stats["deploy"]["median"]
        rows.append({"entry": name, "train_ms": t_ms, "deploy_ms": d_ms, "speedup": t_ms / d_ms,
                     "train_params": count["train"][0], "deploy_params": count["deploy"][0],
                     "train_gmacs": count["train"][1] / 1e9, "deploy_gmacs": count["deploy"][1] / 1e9,
                     "train_convs": count["train"][2], "deploy_convs": count["deploy"][2],
                     "max_abs_diff": diff, "train_cv": stats["train"]["cv"], "deploy_cv": stats["deploy"]["cv"]})
    fp = fingerprint(device)
    print(f"device: {fp['gpu'] or fp['cpu']} ({device}); torch {fp['torch']}; input 1x3x{args.size}x{args.size}; threads {args.threads}; "
          f"robust timer, {args.warmup} warm-up + {args.repeats} repeats, median ms; counts on 1x3x256x256")
    print(tabulate([[r["entry"], f"{r['train_ms']:.1f}", f"{r['deploy_ms']:.1f}", f"{r['speedup']:.2f}x",
                     f"{r['train_params']:,}", f"{r['deploy_params']:,}", f"{r['train_gmacs']:.2f}",
                     f"{r['deploy_gmacs']:.2f}", r["train_convs"], r["deploy_convs"], f"{r['max_abs_diff']:.2g}"]
                    for r in rows],
                   headers=["entry", "train ms", "deploy ms", "train/deploy", "params train", "params deploy",
                            "GMACs train", "GMACs deploy", "#conv train", "#conv deploy", "max|Δ|"]))
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
