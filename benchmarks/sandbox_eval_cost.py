"""What the jail costs one untrusted entry on the psnr track: start-up per entry and time per image.

One tiny x4 entry (conv + pixel shuffle, seeded weights) is evaluated by :func:`ntirekit.eval.runner.run_track` on two
image sets of ``--small`` and ``--large`` random HR images (``--size`` px square): trusted (in this process) and
untrusted (its code in the jail gets the LR images over the channel and returns its outputs, which this process scores;
its exported graph runs in a second, kit-only jail on the same images and must give the same outputs), the four runs
interleaved ``--repeats`` times. From the medians: per image = (t_large - t_small) / (large - small), start-up =
t_small - small * per image, for each mode, and the jail's extra cost (ms).

    python benchmarks/sandbox_eval_cost.py                      # 3 repeats, 2 and 10 images of 128 px
    python benchmarks/sandbox_eval_cost.py --repeats 5 --size 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from ntirekit.core.registry import discover
from ntirekit.data.images import write_image
from ntirekit.core.trust import declared_roots
from ntirekit.eval.runner import run_track
from ntirekit.jail.bwrap import bwrap_problem
from ntirekit.eval.track import EvalOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.entries import write_entry  # noqa: E402 - the tests' tiny entry


def make_world(root: Path, counts: tuple[int, int], size: int) -> tuple[object, dict[int, Path]]:
    folder = write_entry(root / "entries", "tiny", extra_toml='\n[weights]\nfile = "w.pth"\n')
    torch.manual_seed(0)
    torch.save({"conv.weight": torch.randn(48, 3, 3, 3) * 0.1, "conv.bias": torch.zeros(48)}, folder / "w.pth")
    rng = np.random.default_rng(0)
    sets = {}
    for n in counts:
        sets[n] = root / f"data{n}"
        for i in range(n):
            write_image(sets[n] / f"img{i:03d}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return discover([root / "entries"], include_defaults=False)["tiny"], sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", type=int, default=2)
    parser.add_argument("--large", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    if bwrap_problem() is not None:
        sys.exit(f"no sandbox here: {bwrap_problem()}")
    with tempfile.TemporaryDirectory() as tmp:
        entry, sets = make_world(Path(tmp), (args.small, args.large), args.size)
        times: dict[tuple[str, int], list[float]] = {}
        psnr: dict[tuple[str, int], float] = {}
        for _ in range(args.repeats):
            for mode, isolate in (("jail", True), ("in process", None)):
                for n, data in sets.items():
                    options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False)
                    start = time.perf_counter()
                    with declared_roots(trusted=[] if isolate else [entry.folder]):
                        rec = run_track([entry], options, isolate=isolate, timeout_s=600)[0]
                    times.setdefault((mode, n), []).append((time.perf_counter() - start) * 1e3)
                    assert rec["status"] == "ok", rec.get("error")
                    psnr[(mode, n)] = rec["psnr_db"]
    rows, fit = [], {}
    span = args.large - args.small
    for mode in ("jail", "in process"):
        small, large = (statistics.median(times[(mode, n)]) for n in (args.small, args.large))
        per_image = (large - small) / span
        fit[mode] = (small - args.small * per_image, per_image)
        rows.append([mode, f"{small:.0f}", f"{large:.0f}", f"{fit[mode][0]:.0f}", f"{per_image:.1f}"])
    rows.append(["jail - in process", "", "", f"{fit['jail'][0] - fit['in process'][0]:+.0f}",
                 f"{fit['jail'][1] - fit['in process'][1]:+.1f}"])
    print(tabulate(rows, headers=["mode", f"{args.small} img [ms]", f"{args.large} img [ms]", "start-up [ms]",
                                  "per image [ms]"]))
    same = all(psnr[("jail", n)] == psnr[("in process", n)] for n in sets)
    print(f"\n{args.size}x{args.size} HR, x4 tiny entry, median of {args.repeats}; PSNR identical in both modes: {same}")


if __name__ == "__main__":
    main()
