"""submitit's executors, set up for evaluation jobs: one GPU per job, a cap on concurrent jobs, a time limit.

``local``
    :class:`submitit.LocalExecutor`: each job is a fresh process on this machine with ``CUDA_VISIBLE_DEVICES`` set to
    one GPU; at most one job per visible GPU runs at a time (``max_parallel`` lowers that). On a machine without a GPU
    (or with ``--device cpu``) jobs run on the CPU, ``max_parallel`` at a time (default 1: timings are only worth
    something on an otherwise idle machine), with CUDA hidden.
``slurm``
    :class:`submitit.SlurmExecutor`: all jobs in one job array (``--array=0-(n-1)%max_parallel``), one task per array
    element with ``--gpus-per-node=1``, ``--partition``, ``--time`` (minutes), ``--mem``, ``--cpus-per-task``. The
    jobs folder and the Python environment must be on a file system the nodes share.

The time limit covers a whole job (interpreter start-up, model load, every image); a job past it is killed by the
executor and recorded as failed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

EXECUTORS = ("local", "slurm")
DEFAULT_TIME_LIMIT_MIN = 120


class ExecutorError(Exception):
    """The executor cannot be used here (no Slurm, bad settings); the message is one line."""


@dataclasses.dataclass
class ExecutorSettings:
    """How jobs are submitted. ``time_limit_min`` per job [min]; ``mem_gb`` host memory per job [GB] (Slurm);
    ``max_parallel`` concurrent jobs (local: at most the visible GPUs; Slurm: ``array_parallelism``); ``jobs_dir``
    holds run files and submitit's logs (default ``OUT/.jobs``)."""

    kind: str = "local"
    partition: str | None = None
    time_limit_min: int = DEFAULT_TIME_LIMIT_MIN
    mem_gb: float | None = None
    max_parallel: int | None = None
    cpus_per_task: int | None = None
    jobs_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"unknown executor {self.kind!r} (known: {', '.join(EXECUTORS)})")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ExecutorError(f"--max-parallel must be at least 1, not {self.max_parallel}")
        if self.time_limit_min < 1:
            raise ExecutorError(f"--time-limit must be at least 1 minute, not {self.time_limit_min}")


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


def slurm_parameters(settings: ExecutorSettings, gpu: bool = True) -> dict[str, Any]:
    """The :class:`submitit.SlurmExecutor` parameters of one evaluation job: one task with one GPU (none when
    ``gpu`` is False: ``--device cpu``)."""
    params: dict[str, Any] = {"job_name": "ntirekit-eval", "nodes": 1, "ntasks_per_node": 1,
                              "time": int(settings.time_limit_min)}
    if gpu:
        params["gpus_per_node"] = 1
    if settings.partition:
        params["partition"] = settings.partition
    if settings.mem_gb:
        params["mem"] = f"{int(settings.mem_gb)}GB" if float(settings.mem_gb).is_integer() \
            else f"{int(settings.mem_gb * 1024)}MB"
    if settings.cpus_per_task:
        params["cpus_per_task"] = int(settings.cpus_per_task)
    if settings.max_parallel:
        params["array_parallelism"] = int(settings.max_parallel)
    return params


def make_executor(settings: ExecutorSettings, folder: str | os.PathLike, gpu: bool = True) -> Any:
    """A submitit executor writing its logs under ``folder``; :class:`ExecutorError` when Slurm is absent."""
    import submitit

    folder = Path(folder)
    if settings.kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int(settings.time_limit_min))
        return executor
    missing = [tool for tool in ("sbatch", "srun", "sacct") if shutil.which(tool) is None]
    if missing:
        raise ExecutorError(f"--executor slurm: no Slurm on this machine ({', '.join(missing)} not found on PATH); "
                            "run on a Slurm login node, or use --executor local")
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**slurm_parameters(settings, gpu))
    return executor


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

    def tick(self) -> list[tuple[Any, Any, str | None]]:
        """Start what fits; return (spec, job, state) for the jobs that ended since the last tick (``state``:
        ``"TIMEOUT"`` for a job that ran to its time limit, else None: submitit's own)."""
        ended = []
        for key, (spec, job, slot, started) in list(self.running.items()):
            if job.done():
                timed_out = time.monotonic() - started >= self.time_limit_s
                ended.append((spec, job, "TIMEOUT" if timed_out else None))
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


class SlurmBatch:
    """All jobs as one Slurm job array (``map_array``); states come from ``sacct`` through submitit's watcher."""

    poll_s = 5.0                                # each look at a job touches its folder on the shared file system

    def __init__(self, executor: Any, fn: Any, specs: Sequence[Any]):
        import submitit

        try:
            jobs = executor.map_array(fn, list(specs)) if specs else []
        except (submitit.core.utils.FailedSubmissionError, OSError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise ExecutorError(f"sbatch refused the job array: {text[-1] if text else type(exc).__name__}") \
                from None
        self.waiting = list(zip(specs, jobs))

    def tick(self) -> list[tuple[Any, Any, str | None]]:
        ended = [(spec, job) for spec, job in self.waiting if job.done()]
        gone = {id(job) for _spec, job in ended}
        self.waiting = [(spec, job) for spec, job in self.waiting if id(job) not in gone]
        return [(spec, job, None) for spec, job in ended]

    @property
    def done(self) -> bool:
        return not self.waiting

    def counts(self) -> tuple[int, int]:
        running = sum(1 for _spec, job in self.waiting if job.state.upper().startswith("RUNNING"))
        return running, len(self.waiting) - running

    def cancel(self) -> None:
        for _spec, job in self.waiting:
            job.cancel(check=False)
