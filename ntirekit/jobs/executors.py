"""submitit's executors, set up for evaluation jobs: one GPU per job, a cap on concurrent jobs, a time limit.

``local``
    :class:`submitit.LocalExecutor`: each job is a fresh process on this machine with ``CUDA_VISIBLE_DEVICES`` set to
    one GPU; at most one job per visible GPU runs at a time (``max_parallel`` lowers that). On a machine without a GPU
    (or with ``--device cpu``) jobs run on the CPU, ``max_parallel`` at a time (default 1: timings are only worth
    something on an otherwise idle machine), with CUDA hidden.
``slurm``
    :class:`submitit.SlurmExecutor`: all jobs in one job array, watched with ``squeue``: see
    :mod:`ntirekit.jobs.slurm` for what it asks Slurm for and how it follows the jobs. The jobs folder and the Python
    environment must be on a file system the nodes share.

The time limit covers a whole job (interpreter start-up, model load, every image); a job past it is killed by the
executor and recorded as ``TIMEOUT``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from ntirekit.jobs.settings import ExecutorSettings
from ntirekit.jobs.slurm import make_slurm_executor


def visible_gpus() -> list[int]:
    """The GPU indices jobs may be given: ``CUDA_VISIBLE_DEVICES`` when it lists indices, else every device."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed and all(part.strip().isdigit() for part in listed.split(",")):
        return [int(part) for part in listed.split(",")]
    return list(range(torch.cuda.device_count()))


def local_slots(settings: ExecutorSettings, device: str) -> list[int | None]:
    """One slot per concurrent local job: a GPU index, or None for a CPU job."""
    gpus = [] if device.startswith("cpu") else visible_gpus()
    if gpus:
        return list(gpus[:settings.max_parallel] if settings.max_parallel else gpus)
    return [None] * (settings.max_parallel or 1)


def make_executor(settings: ExecutorSettings, folder: str | os.PathLike, gpu: bool = False) -> Any:
    """A submitit executor writing its logs under ``folder`` (``gpu``, Slurm: ask for one GPU per job);
    :class:`~ntirekit.jobs.settings.ExecutorError` when Slurm is absent."""
    import submitit

    folder = Path(folder)
    if settings.kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int(settings.time_limit_min))
        return executor
    return make_slurm_executor(settings, folder, gpu)


class LocalBatch:
    """Local jobs started as slots free up: each gets one GPU (``CUDA_VISIBLE_DEVICES``) or the CPU."""

    poll_s = 0.5

    def __init__(self, executor: Any, fn: Any, specs: Sequence[Any], slots: list[int | None],
                 time_limit_min: float):
        self.executor, self.fn = executor, fn
        self.pending = list(specs)
        self.free = list(slots)
        self.time_limit_s = 60.0 * time_limit_min
        self.running: dict[int, tuple[Any, Any, int | None, float]] = {}   # id(job) -> (spec, job, slot, started)

    def tick(self) -> list[tuple[Any, Any, str | None, None]]:
        """Start what fits; return (spec, job, state, None) for the jobs that ended since the last tick (``state``:
        ``"TIMEOUT"`` for a job that ran to its time limit, else None: submitit's own)."""
        ended = []
        for key, (spec, job, slot, started) in list(self.running.items()):
            if job.done():
                timed_out = time.monotonic() - started >= self.time_limit_s
                ended.append((spec, job, "TIMEOUT" if timed_out else None, None))
                self.free.append(slot)
                del self.running[key]
        while self.pending and self.free:
            slot = self.free.pop(0)
            spec = self.pending.pop(0)
            if slot is None:
                self.executor.update_parameters(gpus_per_node=0, visible_gpus=())
            else:
                self.executor.update_parameters(gpus_per_node=1, visible_gpus=(slot,))
            job = self.executor.submit(self.fn, spec)
            self.running[id(job)] = (spec, job, slot, time.monotonic())
        return ended

    @property
    def done(self) -> bool:
        return not self.pending and not self.running

    def counts(self) -> tuple[int, int]:
        """(running, pending)"""
        return len(self.running), len(self.pending)

    def cancel(self) -> None:
        self.pending.clear()
        for _spec, job, _slot, _started in self.running.values():
            job.cancel(check=False)
