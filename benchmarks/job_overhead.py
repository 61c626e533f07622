#!/usr/bin/env python
"""Overhead of a job: seconds from submission to the first image, submitit's local executor against in-process.

A tiny entry (bicubic interpolation, one parameter) whose first forward writes the time into a file is evaluated on
the psnr track over two 64x64 images, ``--jobs`` times, each time as a single job through
:func:`ntirekit.jobs.run_jobs` (``--executor local``: a fresh process, nothing shared), then once in this process
with :func:`ntirekit.eval.runner.run_track` (torch already imported). Printed per job:

- ``start``: submission -> the job function starts (process spawn, interpreter, unpickling the job, torch import);
- ``first image``: submission -> the model's first forward (adds the kit's imports, data and model loading);
- ``total``: submission -> the records merged into ``--out`` (adds the rest of the run and the collection).

Measured on CPU (torch 2.13.0+cpu, 2 cores shared with other work; ``--jobs 3``): submission -> first image 6.85 /
7.88 / 6.94 s (median 6.94 s; the job function started after 6.2-7.2 s), in-process 0.09 s, so ~6.8 s of overhead per
job; in a run while the cores carried a load of ~11 the same figures were 17.4-26.4 s (median 19.1 s) against 0.26 s.

    .venv/bin/python benchmarks/job_overhead.py --jobs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MODEL = '''
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class Stamped(nn.Module):
    def __init__(self, scale=4, stamp=""):
        super().__init__()
        self.scale, self.stamp = scale, stamp
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        path = Path(self.stamp)
        if not path.exists():
            path.write_text(repr(time.time()))
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic") * self.gain
'''


def make_entry(root: Path, name: str, stamp: Path) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "entry.toml").write_text(
        f'name = "{name}"\ntrack = "esr"\ntask = "sr"\nscale = 4\ndata_range = 1.0\n\n'
        f'[model]\nfactory = "model.py:Stamped"\nkwargs = {{ scale = 4, stamp = "{stamp}" }}\n')


def make_images(folder: Path) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"im{i}.png"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="jobs to time, one after the other")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from ntirekit.core.registry import discover
    from ntirekit.jobs import ExecutorSettings, run_jobs
    from ntirekit.jobs.spec import read_run, run_file_path
    from ntirekit.eval.runner import run_track
    from ntirekit.eval.track import EvalOptions

    with tempfile.TemporaryDirectory(prefix="ntirekit-job-overhead-") as tmp:
        tmp_path = Path(tmp)
        make_images(tmp_path / "HR")
        names = [f"stamped{i}" for i in range(args.jobs + 1)]
        for name in names:
            make_entry(tmp_path / "entries", name, tmp_path / f"{name}.first")
        registry = discover([tmp_path / "entries"], include_defaults=False)
        options = EvalOptions(track="psnr", data=str(tmp_path / "HR"), device="cpu", progress=False)
        settings = ExecutorSettings("local", max_parallel=1)
        rows = []
        for name in names[:-1]:
            out = tmp_path / "out"
            submitted = time.time()
            records = run_jobs([registry[name]], options, out, settings)
            merged = time.time()
            assert records[0]["status"] == "ok", records[0]
            started = read_run(run_file_path(out / ".jobs", name, "psnr", 0))["job"]["started"]
            first = float((tmp_path / f"{name}.first").read_text())
            rows.append((started - submitted, first - submitted, merged - submitted))
        name = names[-1]
        called = time.time()
        run_track([registry[name]], options, isolate=False)
        in_process = float((tmp_path / f"{name}.first").read_text()) - called

    print(f"{'job':>4} {'start [s]':>10} {'first image [s]':>16} {'total [s]':>10}")
    for i, (start, first, total) in enumerate(rows):
        print(f"{i:>4} {start:>10.2f} {first:>16.2f} {total:>10.2f}")
    firsts = [r[1] for r in rows]
    print(f"\nsubmission -> first image, local executor: median {statistics.median(firsts):.2f} s "
          f"(min {min(firsts):.2f}, max {max(firsts):.2f}) over {len(rows)} jobs")
    print(f"call -> first image, in process (torch already imported): {in_process:.2f} s")
    print(f"overhead per job: {statistics.median(firsts) - in_process:.2f} s")


if __name__ == "__main__":
    main()
