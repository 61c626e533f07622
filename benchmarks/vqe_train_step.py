"""Seconds per training step of a video QE recipe (default: the ``cpu-small`` preset) on this machine.

Builds the model, the batch source (crops, flips, cached DIS flows) and the loss exactly as ``ntirekit train ENTRY
--preset NAME`` does, runs ``--warmup`` steps, then times ``--steps`` steps and prints the median and mean seconds
per step, with the steps a wall budget of ``--budget-min`` minutes holds at that rate. One thread unless told.

    python benchmarks/vqe_train_step.py --data /work/runs17/train --entry ntirekit/baselines/pqf_basicvsrpp
    python benchmarks/vqe_train_step.py --data DATA --set mid_channels=16 --set hr_channels=64   # other sizes

The figure depends on what else runs on the machine: compare recipes in one session, side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training clip pairs (the output of `ntirekit data compress`)")
    ap.add_argument("--entry", default="ntirekit/baselines/pqf_basicvsrpp", help="entry folder")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--patch", type=int)
    ap.add_argument("--frames", type=int)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget-min", type=float, default=75.0)
    args = ap.parse_args()

    from ntirekit.cli.train_cmd import parse_settings
    from pathlib import Path

    from ntirekit.core.spec import Entry, read_spec
    from ntirekit.train.losses import staged_loss
    from ntirekit.train.presets import get_preset
    from ntirekit.train.video import ClipSequenceSource, load_clip_pairs, model_for_video_training

    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    opts = dict(preset.options)
    for key in ("batch_size", "patch", "frames"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    settings = {**preset.settings, **parse_settings(tuple(args.settings))}
    entry = Entry(read_spec(Path(args.entry)), Path(args.entry))
    torch.manual_seed(0)
    model = model_for_video_training(entry, finetune=False, overrides=settings, identity=opts["identity_init"],
                                     kaiming=opts["kaiming_init"])
    wants_pqf = callable(getattr(model, "default_pqf", None))
    dis = getattr(model, "flow", None) == "dis"
    t0 = time.perf_counter()
    clips = load_clip_pairs(args.data, default_pqf=model.default_pqf if wants_pqf else None, flows=dis)
    load_s = time.perf_counter() - t0
    source = ClipSequenceSource(clips, opts["frames"], opts["patch"], batch_size=opts["batch_size"],
                                pass_pqf=wants_pqf, pass_flows=dis)
    loss = staged_loss(opts["loss"], None, steps=1)
    opt = torch.optim.Adam(model.parameters(), lr=opts["lr"])
    rng = np.random.default_rng(0)
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        inputs, gt = source.sample(rng)
        opt.zero_grad(set_to_none=True)
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        loss(out, gt).backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    med, mean = statistics.median(times), statistics.mean(times)
    print(f"{entry.name} preset {preset.name} settings {settings} | frames {opts['frames']} patch {opts['patch']} "
          f"batch {opts['batch_size']} | {params:,} parameters | threads {args.threads}")
    print(f"data load (with DIS flows, cached after the first run): {load_s:.1f} s; {source}")
    print(f"s/step: median {med:.3f}, mean {mean:.3f}, min {min(times):.3f}, max {max(times):.3f} "
          f"over {len(times)} steps -> {int(args.budget_min * 60 / mean)} steps in {args.budget_min:g} min")


if __name__ == "__main__":
    main()
