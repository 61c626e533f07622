"""Slurm as clusters run it: the job array submitted through submitit, watched with ``squeue`` alone.

What the kit asks Slurm for (:func:`slurm_parameters`, the ``#SBATCH`` lines):

- ``--array=0-(n-1)%P``: one task per job, at most ``--max-parallel`` P at a time; ``--nodes=1
  --ntasks-per-node=1``; ``--time`` = ``--time-limit``; ``--partition``, ``--mem``, ``--cpus-per-task`` when given
  (else the cluster's defaults, one CPU on most; the job's torch threads follow what it is given);
- ``--gpus-per-node=1`` only for ``--device cuda``: ``auto`` asks for no GPU and each job uses the GPU its node
  gives it, if any, so that it runs on a GPU-less cluster or partition (one without GPU gres) too;
- ``--no-requeue``: a job runs once. Slurm's default (``JobRequeue=1``) starts a job again after ``NODE_FAIL`` or a
  pre-emption, after the kit has recorded it as failed; the kit's rerun submits it instead;
- ``--signal=USR2@D``, D = :func:`signal_delay_s`: Slurm's warning that the time limit is near. Slurm checks
  every 30 s, so it comes D to D+30 s before the limit; D is short enough for that to fall after the job's
  start-up (USR2 is ignored until the job's own handler is set: :data:`LAUNCHER`). A SIGTERM after the warning is
  the time limit: the job records itself as ``TIMEOUT`` (:func:`ntirekit.jobs.spec.slurm_signals`).

Watching (:class:`SlurmBatch`): one ``squeue --user=UID --array --states=all`` per :attr:`SlurmBatch.poll_s` for the
whole array, no ``sacct`` (with ``AccountingStorageType=accounting_storage/none``, common on small clusters,
``sacct`` answers nothing). A job is over when its run file holds its outcome, or when squeue shows it in a final
state or no longer lists it (Slurm forgets an ended job after ``MinJobAge``, 300 s by default): its state is the last
one squeue showed (what ``scontrol show job`` says too), ``UNKNOWN`` when it was never seen. Nothing hangs: past the
wait limit (:meth:`~ntirekit.jobs.settings.ExecutorSettings.wait_limit_s`) the jobs not over are cancelled and
recorded as failed with a line saying so; a squeue that stops answering is said once, and the wait limit still holds.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, BinaryIO, Callable, Iterator, Sequence

from ntirekit.jobs.settings import JOB_STARTUP_S, ExecutorError, ExecutorSettings
from ntirekit.jobs.spec import has_outcome

#: the Slurm commands the kit calls (no sacct: accounting may be off)
SLURM_TOOLS = ("sbatch", "srun", "squeue", "scancel")
#: job states after which a job does not run again (it is submitted with --no-requeue)
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                          "DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"})
#: how a job's Python starts: USR2 ignored (its default action would kill a job warned while it still imports
#: torch) until the job's own handler replaces it; an ignored signal stays ignored across exec
LAUNCHER = "/bin/sh -c 'trap \"\" USR2; exec \"$@\"' ntirekit-job"


def signal_delay_s(time_limit_min: int) -> int:
    """Seconds before the time limit that Slurm's warning is asked for: submitit's 90 where the limit leaves room,
    less for short limits so that the warning (up to 30 s earlier still) comes after the start-up:
    ``min(90, limit - 30 - JOB_STARTUP_S)``, at least 1 (1 min: 1 s, the warning 1-31 s before the limit)."""
    return max(1, min(90, 60 * int(time_limit_min) - 30 - JOB_STARTUP_S))


def slurm_parameters(settings: ExecutorSettings, gpu: bool = False) -> dict[str, Any]:
    """The :class:`submitit.SlurmExecutor` parameters of one evaluation job (see the module docstring); ``gpu``:
    ask for one GPU (``--device cuda``)."""
    params: dict[str, Any] = {"job_name": "ntirekit-eval", "nodes": 1, "ntasks_per_node": 1,
                              "time": int(settings.time_limit_min),
                              "signal_delay_s": signal_delay_s(settings.time_limit_min),
                              "additional_parameters": {"no_requeue": True}}
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


def check_slurm() -> None:
    """:class:`ExecutorError` (one line) where the Slurm commands are not on PATH."""
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ExecutorError(f"--executor slurm: no Slurm on this machine ({', '.join(missing)} not found on PATH); "
                            "run on a Slurm login node, or use --executor local")


def make_slurm_executor(settings: ExecutorSettings, folder: Any, gpu: bool) -> Any:
    """A :class:`submitit.SlurmExecutor` for ``settings``; :class:`ExecutorError` where Slurm is absent."""
    import submitit

    check_slurm()
    executor = submitit.SlurmExecutor(folder=folder, python=f"{LAUNCHER} {shlex.quote(sys.executable)}")
    executor.update_parameters(**slurm_parameters(settings, gpu))
    return executor


@contextlib.contextmanager
def _stderr_to(file: BinaryIO) -> Iterator[None]:
    """File descriptor 2 (this process's and its children's stderr) into ``file`` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def request_line(settings: ExecutorSettings, jobs: int, device: str) -> str:
    """What the kit asks Slurm for, in one line (the plan line of ``--executor slurm``)."""
    parallel = f"at most {settings.max_parallel} at a time" if settings.max_parallel else "as many at a time as fit"
    cpus = f"{settings.cpus_per_task} CPUs" if settings.cpus_per_task else "the partition's default CPUs"
    gpu = ("1 GPU (--device cuda)" if str(device).startswith("cuda") else
           "no GPU (--device cpu)" if str(device).startswith("cpu") else
           "no GPU (--device auto: a job uses a GPU where its node gives it one; --device cuda asks for one)")
    where = f"partition {settings.partition}" if settings.partition else "the default partition"
    return (f"slurm: {jobs} job{'s' if jobs != 1 else ''} as one array on {where}, {parallel}; each 1 task, {cpus}, "
            f"{gpu}, time limit {settings.time_limit_min} min (warned {signal_delay_s(settings.time_limit_min)} s "
            f"before by USR2), not requeued; the command waits at most {settings.wait_limit_s(jobs) / 60:.0f} min; "
            f"jobs run {sys.executable}, which the nodes must see")


def queue_states(array_id: str) -> dict[str, str] | None:
    """``{"<array>_<task>": state}`` of the tasks of job array ``array_id`` (``{"<id>": state}`` for a single job:
    submitit submits one job alone) that Slurm still knows (pending, running or ended less than ``MinJobAge``
    ago); None when squeue does not answer."""
    try:
        done = subprocess.run(["squeue", f"--user={os.getuid()}", "--array", "--states=all", "--noheader",
                               "--format=%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id == array_id or job_id.startswith(f"{array_id}_"):     # one job alone is not an array
            states[job_id] = state.strip().upper()
    return states


class SlurmBatch:
    """All jobs as one Slurm job array (``map_array``), watched with :func:`queue_states` (see the module
    docstring); ``note`` prints one line (nothing under ``--quiet``)."""

    poll_s = 5.0
    #: how long a job gone from the queue may take to show its run file (a shared file system's lag) [s]
    settle_s = 10.0

    def __init__(self, executor: Any, fn: Any, specs: Sequence[Any], wait_limit_s: float,
                 note: Callable[[str], None] = lambda line: None):
        import submitit

        with tempfile.TemporaryFile() as said, _stderr_to(said):   # sbatch's own lines: into the one error line
            try:
                jobs = executor.map_array(fn, list(specs)) if specs else []
            except (submitit.core.utils.FailedSubmissionError, OSError, RuntimeError) as exc:
                failed = exc
            else:
                failed = None
            said.seek(0)
            text = [*str(failed or "").strip().splitlines(), *said.read().decode(errors="replace").splitlines()]
        if failed is not None:
            errors = [line.strip() for line in text if "error" in line.lower()] or text
            raise ExecutorError(f"sbatch refused the job array: {errors[-1] if errors else type(failed).__name__}")
        self.array_id = str(jobs[0].job_id).split("_")[0] if jobs else ""
        self.waiting = {str(job.job_id): (spec, job) for spec, job in zip(specs, jobs)}
        self.states: dict[str, str] = {}
        self.over_since: dict[str, float] = {}
        self.wait_limit_s = wait_limit_s
        self.deadline = time.monotonic() + wait_limit_s
        self.note = note
        self.silent = False

    def tick(self) -> list[tuple[Any, Any, str | None, str | None]]:
        """(spec, job, state, reason) of the jobs over since the last tick (``reason``: None, or the line of a job
        the wait limit cancelled)."""
        now = time.monotonic()
        queue = queue_states(self.array_id)
        if (queue is None) != self.silent:
            self.silent = queue is None
            self.note("slurm: squeue does not answer; still waiting, at most until the wait limit" if self.silent
                      else "slurm: squeue answers again")
        ended = []
        for job_id, (spec, job) in list(self.waiting.items()):
            state = queue.get(job_id) if queue is not None else None
            if state:
                self.states[job_id] = state
            known = self.states.get(job_id)
            if has_outcome(spec, job_id):
                ended.append((spec, job, known, None))
            elif queue is not None and (state is None or state.split()[0] in FINAL_STATES):
                if now - self.over_since.setdefault(job_id, now) >= self.settle_s:
                    ended.append((spec, job, known or "UNKNOWN", None))
            elif queue is not None:
                self.over_since.pop(job_id, None)
        for _spec, job, _state, _reason in ended:
            del self.waiting[str(job.job_id)]
        if self.waiting and now >= self.deadline:
            ended += self._give_up()
        return ended

    def _give_up(self) -> list[tuple[Any, Any, str | None, str | None]]:
        """Cancel the jobs not over at the wait limit; their (spec, job, state, reason)."""
        minutes = f"{self.wait_limit_s / 60:.3g} min"
        left = []
        for job_id, (spec, job) in self.waiting.items():
            state = self.states.get(job_id, "UNKNOWN")
            left.append((spec, job, state, f"job {job_id} was still {state} when the command's wait limit "
                                            f"({minutes}) ran out: cancelled; run the same command again"))
        self.cancel()
        self.note(f"slurm: wait limit ({minutes}) reached with {len(left)} job(s) not over: cancelled and recorded "
                  f"as failed; run the same command again to submit them (--wait-limit sets the limit)")
        return left

    @property
    def done(self) -> bool:
        return not self.waiting

    def counts(self) -> tuple[int, int]:
        """(running, pending)"""
        running = sum(1 for job_id in self.waiting if self.states.get(job_id, "").startswith(("RUNNING",
                                                                                               "COMPLETING")))
        return running, len(self.waiting) - running

    def cancel(self) -> None:
        ids = list(self.waiting)
        self.waiting = {}
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
