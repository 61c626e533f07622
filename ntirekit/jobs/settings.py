"""How jobs are submitted (:class:`ExecutorSettings`) and the one error the job layer raises (:class:`ExecutorError`).

Times: ``time_limit_min`` per job and ``wait_limit_min`` for the whole command, in minutes; :data:`JOB_STARTUP_S`
is the start-up of a job (interpreter, torch and kit imports, the job pickle) that every limit must leave room for:
6.9 s measured on 2 idle cores, 17-26 s while they carried a load of ~11 (``benchmarks/job_overhead.py``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

EXECUTORS = ("local", "slurm")
DEFAULT_TIME_LIMIT_MIN = 120
#: a job's start-up allowance [s] (see the module docstring)
JOB_STARTUP_S = 30
#: what the default wait limit adds to the time limits of the job waves: queueing, start-up, Slurm's slack [min]
DEFAULT_QUEUE_ALLOWANCE_MIN = 60


class ExecutorError(Exception):
    """The executor cannot be used here (no Slurm, bad settings, a wait limit reached); the message is one line."""


@dataclasses.dataclass
class ExecutorSettings:
    """How jobs are submitted. ``time_limit_min`` per job [min]; ``mem_gb`` host memory per job [GB] (Slurm);
    ``max_parallel`` concurrent jobs (local: at most the visible GPUs; Slurm: ``array_parallelism``);
    ``cpus_per_task`` CPU cores per job (Slurm; the job's torch threads follow its allocation either way);
    ``jobs_dir`` holds run files and submitit's logs (default ``OUT/.jobs``); ``wait_limit_min`` the longest the
    submitting command waits for its jobs (Slurm; None: :meth:`wait_limit_s` computes one)."""

    kind: str = "local"
    partition: str | None = None
    time_limit_min: int = DEFAULT_TIME_LIMIT_MIN
    mem_gb: float | None = None
    max_parallel: int | None = None
    cpus_per_task: int | None = None
    jobs_dir: Path | None = None
    wait_limit_min: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"unknown executor {self.kind!r} (known: {', '.join(EXECUTORS)})")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ExecutorError(f"--max-parallel must be at least 1, not {self.max_parallel}")
        if self.time_limit_min < 1:             # whole minutes (Slurm's --time): 1 min is twice the start-up
            raise ExecutorError(f"--time-limit must be at least 1 minute, not {self.time_limit_min}: a job's "
                                f"start-up alone takes up to {JOB_STARTUP_S} s")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ExecutorError(f"--cpus-per-task must be at least 1, not {self.cpus_per_task}")
        if self.wait_limit_min is not None and self.wait_limit_min <= 0:
            raise ExecutorError(f"--wait-limit must be positive, not {self.wait_limit_min}")

    def wait_limit_s(self, jobs: int) -> float:
        """The longest the command waits for ``jobs`` jobs [s]: ``wait_limit_min``, else every wave of jobs
        (``max_parallel`` at a time) at its full time limit plus :data:`DEFAULT_QUEUE_ALLOWANCE_MIN`."""
        if self.wait_limit_min is not None:
            return 60.0 * self.wait_limit_min
        waves = math.ceil(max(1, jobs) / (self.max_parallel or max(1, jobs)))
        return 60.0 * (waves * (self.time_limit_min + 1) + DEFAULT_QUEUE_ALLOWANCE_MIN)
