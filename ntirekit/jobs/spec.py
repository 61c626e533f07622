"""What one job runs: one entry on one track for one run, in a fresh process, its records kept in a run file.

A job calls :func:`ntirekit.eval.runner.run_track` on its entry with ``runs=1`` (and, on the :data:`TIMED_TRACKS`, on the
baseline entry too, in the same process and on the same GPU) and writes ``JOBS/runs/<entry>__<track>__run<k>.json``
holding ``{"job": {...}, "records": [...]}``. The run file, not submitit's result pickle, is the job's result: it
survives the submitting process, and a rerun reads it to know what is done.

``job`` holds ``key``, ``host``, ``job_id`` (Slurm's or the local process id), ``cuda_visible_devices``, ``started``
and ``finished`` (Unix time, seconds), or, for a job that ended without a result, ``state`` and ``reason``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ntirekit.core.spec import Entry
from ntirekit.core.records import write_json_atomic
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions

#: tracks whose ``--runs`` become one job each and whose jobs time the baseline entry beside their own
TIMED_TRACKS = ("runtime", "overall")


@dataclasses.dataclass
class JobSpec:
    """One (entry, track, run); ``options`` are the job's own (``runs=1``, no progress bars, device ``cuda`` or
    ``cpu``: a job sees only its GPU)."""

    entry: Entry
    run: int
    options: EvalOptions
    run_file: Path
    baseline: Entry | None = None
    isolate: bool | None = None
    timeout_s: float | None = None
    memory_mb: int | None = None

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
    """The record of ``entry`` in a run file (None when the run is missing)."""
    if run is None:
        return None
    return next((r for r in run["records"] if isinstance(r, dict) and r.get("entry") == entry), None)


def job_environment() -> dict[str, Any]:
    """Where this job runs: host, scheduler job id, the GPU it was given."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {"host": socket.gethostname(), "job_id": job_id,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def run_job(spec: JobSpec) -> dict[str, Any]:
    """The body of a job (runs in the job's process): evaluate, write the run file, return its content."""
    started = time.time()
    entries = [spec.entry]
    if spec.baseline is not None and spec.baseline.name != spec.entry.name:
        entries.append(spec.baseline)
    records = run_track(entries, spec.options, isolate=spec.isolate, timeout_s=spec.timeout_s,
                        memory_mb=spec.memory_mb)
    run = {"job": {"key": spec.key, **job_environment(), "started": started, "finished": time.time()},
           "records": records}
    write_json_atomic(spec.run_file, run)
    return run
