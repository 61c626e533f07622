"""What one job runs: one entry on one track for one run, in a fresh process, its records kept in a run file.

A job calls :func:`ntirekit.eval.runner.run_track` on its entry with ``runs=1`` (and, on the :data:`TIMED_TRACKS`, on the
baseline entry too, in the same process and on the same GPU) and writes ``JOBS/runs/<entry>__<track>__run<k>.json``
holding ``{"job": {...}, "records": [...]}``. The run file, not submitit's result pickle, is the job's result: it
survives the submitting process, and a rerun reads it to know what is done.

``job`` holds ``key``, ``host``, ``job_id`` (Slurm's ``<array>_<task>`` or the local process id),
``cuda_visible_devices``, ``threads`` (the torch threads it ran with), ``device`` (its fingerprint), ``started`` and
``finished`` (Unix time, seconds), or, for a job that ended without a result, ``state`` and ``reason``. A job writes
its run file twice: on start with no records (so that a failure recorded for it later is filed under the fingerprint
it had), and at the end with them.

Inside a job (:func:`run_job`), nothing is taken from the submitting machine by chance:

- the ``NTIREKIT_*`` variables it runs with are the submitter's, carried in the spec, path lists made absolute
  (:func:`job_variables`); ``--data`` and ``--weights`` paths are absolute too (``ntirekit.jobs.run.plan``);
- torch's threads are the CPUs Slurm allocated to it (:func:`allocated_cpus`: ``SLURM_CPUS_PER_TASK``, else
  ``SLURM_CPUS_ON_NODE``; at most the cores it may run on), unless ``--threads`` says otherwise, and its isolated
  entries get the same through ``OMP_NUM_THREADS``; so the fingerprint says the threads the job really had;
- ``--device auto`` is resolved on the node.

Signals (Slurm, :func:`slurm_signals`): ``USR2`` is Slurm's warning that the time limit is near (``--signal``, see
:mod:`ntirekit.jobs.slurm`); a ``SIGTERM`` after it is the time limit: the job writes its ``TIMEOUT`` failure in
its run file and stops. A ``SIGTERM`` without the warning (``scancel``, pre-emption) stops it with nothing written:
the scheduler's state says what happened. A job never overwrites an outcome already recorded for it (a job the
submitter recorded as lost whose process lived on: a ``NODE_FAIL`` node that comes back), and a job Slurm started
again (``SLURM_RESTART_COUNT`` > 0, a cluster that requeues despite ``--no-requeue``) does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from ntirekit.core.errors import Terminated
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import failure, write_json_atomic
from ntirekit.core.spec import Entry
from ntirekit.eval.runner import check_data, options_record, run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import get_track

#: tracks whose ``--runs`` become one job each and whose jobs time the baseline entry beside their own
TIMED_TRACKS = ("runtime", "overall")
#: the kit's variables whose values are ``os.pathsep``-separated folders (made absolute for the jobs)
PATH_VARIABLES = ("NTIREKIT_WEIGHTS", "NTIREKIT_CACHE", "NTIREKIT_ENTRIES", "NTIREKIT_UNTRUSTED_ROOTS",
                  "NTIREKIT_TRUSTED_ROOTS")
#: the thread settings a job's isolated children read
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclasses.dataclass
class JobSpec:
    """One (entry, track, run); ``options`` are the job's own (``runs=1``, no progress bars, device ``auto``,
    ``cuda`` or ``cpu``: a job sees only its GPU); ``environment``: the ``NTIREKIT_*`` variables it runs with;
    ``dataset``: the data's identity at the entry's scale, as the submitter checked it (None: not known, read again
    when a failure record needs it)."""

    entry: Entry
    run: int
    options: EvalOptions
    run_file: Path
    baseline: Entry | None = None
    isolate: bool | None = None
    timeout_s: float | None = None
    memory_mb: int | None = None
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    dataset: str | None = None

    @property
    def track(self) -> str:
        return self.options.track

    @property
    def key(self) -> str:
        return f"{self.entry.name}__{self.track}__run{self.run}"


def run_file_path(jobs_dir: str | os.PathLike, entry: str, track: str, run: int) -> Path:
    return Path(jobs_dir) / "runs" / f"{entry}__{track}__run{run}.json"


def read_run(path: str | os.PathLike) -> dict[str, Any] | None:
    """A run file's content, or None when it is missing or unreadable (a job killed while writing it)."""
    try:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) and isinstance(run.get("records"), list) else None


def entry_record(run: dict[str, Any] | None, entry: str) -> dict[str, Any] | None:
    """The record of ``entry`` in a run file (None when the run is missing or only started)."""
    if run is None:
        return None
    return next((r for r in run["records"] if isinstance(r, dict) and r.get("entry") == entry), None)


def job_info(run: dict[str, Any] | None) -> dict[str, Any]:
    """The ``job`` part of a run file ({} when there is none)."""
    info = (run or {}).get("job")
    return info if isinstance(info, dict) else {}


def has_outcome(spec: JobSpec, job_id: str) -> bool:
    """Whether the run file holds the outcome (a record of the entry) of job ``job_id``."""
    run = read_run(spec.run_file)
    return entry_record(run, spec.entry.name) is not None and str(job_info(run).get("job_id")) == str(job_id)


def failure_record(spec: JobSpec, device: dict[str, Any], job_id: str, state: str, reason: str) -> dict[str, Any]:
    """The failure record of a job that gave no result: named and stamped as its ok record would be (same
    options, split, protocol, dataset identity: ``spec.dataset``, read from the data only when the spec has none;
    ``device``: the fingerprint it ran, or would have run, under)."""
    track = get_track(spec.track)
    options = track.resolve(spec.options)
    identity = spec.dataset or next(iter(check_data(track, options, [spec.entry]).values()), None)   # as in the job
    return failure(spec.entry.name, spec.track, device, reason, failure_kind="job", job_id=str(job_id),
                   job_state=state, options=options_record(options), split=options.split, protocol=options.protocol,
                   **({"dataset": identity} if identity else {}))


def job_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``NTIREKIT_*`` variables of ``environ`` (default: this process) as a job gets them: the path lists of
    :data:`PATH_VARIABLES` made absolute here, so that a job does not depend on the folder it starts in."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, value in environ.items():
        if not name.startswith("NTIREKIT_"):
            continue
        if name in PATH_VARIABLES:
            value = os.pathsep.join(str(Path(p).expanduser().absolute()) for p in value.split(os.pathsep) if p)
        found[name] = value
    return found


def allocated_cpus(environ: Mapping[str, str] | None = None) -> int | None:
    """The CPUs Slurm allocated to this job's task (``SLURM_CPUS_PER_TASK``, else ``SLURM_CPUS_ON_NODE``: one task
    per node), at most the cores this process may run on; None outside Slurm."""
    environ = os.environ if environ is None else environ
    value = environ.get("SLURM_CPUS_PER_TASK") or (environ.get("SLURM_CPUS_ON_NODE") if environ.get("SLURM_JOB_ID")
                                                   else None)
    if not value or not value.strip().isdigit() or int(value) < 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(int(value), cores)


def use_allocation(options: EvalOptions) -> int:
    """Set torch's threads (and those of isolated children) to the job's CPUs; the threads it now runs with."""
    cpus = allocated_cpus()
    if cpus is not None and options.threads is None:
        torch.set_num_threads(cpus)
        for name in THREAD_VARIABLES:
            os.environ[name] = str(cpus)
    return torch.get_num_threads()


def job_environment() -> dict[str, Any]:
    """Where this job runs: host, scheduler job id, the GPU it was given."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {"host": socket.gethostname(), "job_id": job_id,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def write_run(spec: JobSpec, run: dict[str, Any]) -> bool:
    """Write the run file unless it already holds an outcome recorded for this job (a ``state`` the submitter or
    the job's time-limit handler wrote); False, with one line on stderr, when it does."""
    held = job_info(read_run(spec.run_file))
    if held.get("state") and str(held.get("job_id")) == str(job_info(run).get("job_id")):
        print(f"ntirekit job {held.get('job_id')}: its outcome is already recorded ({held['state']}); its run file "
              f"{spec.run_file} is left as it is", file=sys.stderr, flush=True)
        return False
    write_json_atomic(spec.run_file, run)
    return True


class JobStopped(Terminated):
    """Slurm stopped the job (SIGTERM); a :class:`Terminated`, so no entry's guard takes it for its failure."""


@contextlib.contextmanager
def slurm_signals(on_time_limit: Callable[[], None]) -> Iterator[None]:
    """While a job runs: ``USR2`` (Slurm's warning before the time limit) is noted; ``SIGTERM`` raises
    :class:`JobStopped`, after calling ``on_time_limit`` when the warning came first. Outside Slurm only the
    ``USR2`` handler is set (submitit's local executor sends it before its time limit too; its own kill decides)."""
    warned: list[float] = []

    def warn(signum: int, frame: Any) -> None:
        warned.append(time.time())
        print("ntirekit job: the time-limit warning (USR2)", file=sys.stderr, flush=True)

    def stop(signum: int, frame: Any) -> None:
        if warned:
            on_time_limit()
        raise JobStopped(signum)

    handlers = {signal.SIGUSR2: warn}
    if os.environ.get("SLURM_JOB_ID"):
        handlers[signal.SIGTERM] = stop
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_job(spec: JobSpec) -> dict[str, Any] | None:
    """The body of a job (runs in the job's process): evaluate, write the run file, return its content (None: a
    job Slurm started again, which does nothing)."""
    started = time.time()
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
        print(f"ntirekit job: started again by Slurm (SLURM_RESTART_COUNT={os.environ['SLURM_RESTART_COUNT']}); "
              f"its first start's outcome stands, nothing is run", file=sys.stderr, flush=True)
        return None
    os.environ.update(spec.environment)
    threads = use_allocation(spec.options)
    device = fingerprint(resolve_device(spec.options.device))
    job = {"key": spec.key, **job_environment(), "threads": threads, "device": device, "started": started}
    if not write_run(spec, {"job": job, "records": []}):
        return None
    entries = [spec.entry]
    if spec.baseline is not None and spec.baseline.name != spec.entry.name:
        entries.append(spec.baseline)

    def time_limit() -> None:
        reason = f"job {job['job_id']} ended TIMEOUT: it ran past its time limit (stopped by Slurm after its warning)"
        write_run(spec, {"job": {**job, "state": "TIMEOUT", "reason": reason, "finished": time.time()},
                         "records": [failure_record(spec, device, str(job["job_id"]), "TIMEOUT", reason)]})

    with slurm_signals(time_limit):
        records = run_track(entries, spec.options, isolate=spec.isolate, timeout_s=spec.timeout_s,
                            memory_mb=spec.memory_mb)
    run = {"job": {**job, "finished": time.time()}, "records": records}
    return run if write_run(spec, run) else None
