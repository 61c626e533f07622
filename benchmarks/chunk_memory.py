#!/usr/bin/env python
"""Peak memory of video inference as the clip grows: chunked (bounded) against whole-clip (grows with the length).

Each (mode, length) runs in a fresh Python process that builds PQF-BasicVSR++ (random weights; widths configurable,
the logic and the memory pattern do not depend on the weights), makes a random clip and runs
:func:`ntirekit.eval.clip_inference.enhance_clip`. Two figures per run:

- ``rss``: the process's peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), torch and Python
  included, and the uint8 input/output frames (which grow with the clip in both modes: 192 KiB each at 256x256);
- ``torch``: the peak of live torch storages during inference (:class:`ntirekit.measure.memory.StoragePeakTracker`:
  activations, features, flows; weights and frames excluded), the figure chunking bounds.

Measured on CPU (torch 2.13.0+cpu, 2 cores, 1 thread; defaults: mid_channels 16, 2 blocks, 256x256, chunk 10,
overlap 2): torch peak 59.8 / 59.8 / 59.8 MiB chunked against 59.8 / 87.2 / 142.2 MiB whole-clip at 10 / 20 / 40
frames; peak RSS 466 / 494 / 506 MiB chunked against 435 / 510 / 574 MiB whole (RSS also holds torch itself, the
uint8 frames in and out, and allocator slack: it moves by tens of MiB between identical runs).

    .venv/bin/python benchmarks/chunk_memory.py                                # CPU, 10/20/40 frames, chunk 10
    .venv/bin/python benchmarks/chunk_memory.py --device cuda --mid-channels 64 --size 540x960 --lengths 50 100 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    """One run; prints one JSON object on the last line."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import torch

    from ntirekit.eval.clip_inference import enhance_clip
    from ntirekit.measure.memory import MIB, StoragePeakTracker
    from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = PQFBasicVSRPlusPlus(mid_channels=args.mid_channels, num_blocks=args.num_blocks,
                                num_blocks_reconstruction=args.reconstruction_blocks, flow=args.flow).eval().to(device)
    h, w = (int(s) for s in args.size.split("x"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.frames)]
    chunk = None if args.mode == "whole" else args.chunk
    tracker = StoragePeakTracker()
    tracker.keep([*model.parameters(), *model.buffers()])
    base = tracker.current
    start = time.perf_counter()
    if device.type == "cuda":
        out, stats = enhance_clip(model, frames, chunk=chunk, overlap=args.overlap, device=device,
                                      min_size=model.min_input_size)
        torch_peak = stats["max_memory_mib"]
    else:
        with tracker:
            out, stats = enhance_clip(model, frames, chunk=chunk, overlap=args.overlap, device=device,
                                      min_size=model.min_input_size)
        torch_peak = (tracker.peak - base) / MIB
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": args.mode, "frames": args.frames, "chunk": chunk, "chunks": stats["chunks"],
                      "rss_mib": round(rss, 1), "torch_peak_mib": round(torch_peak, 1),
                      "seconds": round(seconds, 2), "ms_per_frame": round(stats["runtime_ms_per_frame"], 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--modes", nargs="+", choices=["chunked", "whole"], default=["chunked", "whole"])
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--size", default="256x256", help="HxW of the frames")
    parser.add_argument("--mid-channels", type=int, default=16)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--reconstruction-blocks", type=int, default=5)
    parser.add_argument("--flow", default="spynet", choices=["spynet", "zero", "dis"],
                        help="flow source (spynet pads frames to 256x256; zero and dis to 32x32 at least)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="chunked", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    common = ["--chunk", str(args.chunk), "--overlap", str(args.overlap), "--size", args.size, "--mid-channels",
              str(args.mid_channels), "--num-blocks", str(args.num_blocks), "--reconstruction-blocks",
              str(args.reconstruction_blocks), "--device", args.device, "--threads", str(args.threads),
              "--flow", args.flow]
    rows = []
    print(f"PQF-BasicVSR++ mid_channels={args.mid_channels} num_blocks={args.num_blocks} "
          f"reconstruction={args.reconstruction_blocks}, frames {args.size}, chunk {args.chunk} overlap "
          f"{args.overlap}, flow {args.flow}, {args.device}")
    print(f"{'mode':8} {'frames':>6} {'chunks':>6} {'peak RSS MiB':>12} {'torch peak MiB':>14} {'s':>7}")
    for mode in args.modes:
        for n in args.lengths:
            proc = subprocess.run([sys.executable, __file__, "--child", "--mode", mode, "--frames", str(n), *common],
                                  capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{mode:8} {n:6d} {row['chunks']:6d} {row['rss_mib']:12.1f} {row['torch_peak_mib']:14.1f} "
                  f"{row['seconds']:7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
