"""Job outcomes into records, and the runs of each entry merged into ``--out`` as in-process evaluation writes them.

Outcome of a job
    its run file (:mod:`ntirekit.jobs.spec`) when it wrote one; else a failure record (``failure_kind = "job"``,
    ``job_id``, ``job_state``) whose error says what happened: the exception the job raised, or the scheduler's state
    (``NODE_FAIL``: the node was lost; ``PREEMPTED``; ``TIMEOUT``: past ``--time-limit``; ``OUT_OF_MEMORY``;
    ``CANCELLED``; ``UNKNOWN``: gone from the queue, its state forgotten) or, locally, that its process was killed.
    That failure is written as the run's file too, so that a rerun sees the run as failed and submits it again; it
    carries the options, split, protocol and fingerprint its ok record would have, so it is named as that record
    would be and the rerun's record replaces it.
Merging the runs of one (entry, track)
    every run ok: one record per device fingerprint whose runs all came from it, the first run's record with
    ``runtime_ms`` pooled over the runs by :func:`ntirekit.measure.runtime.pool_runs` (as ``--runs N`` pools them in
    one process) and ``options.runs`` = the number of runs; a failed run: the entry's record is that failure
    (``run k of N: ...``). Stale failure files of the entry (another fingerprint, written for a lost job) are removed.
The baseline entry's record (timed tracks)
    on each device fingerprint, the pool of every timing of the baseline there: in its own jobs and beside every
    other entry. Those are the figures ``leaderboard --baseline measured`` divides by.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from ntirekit.jobs.spec import JobSpec, entry_record, failure_record, job_info, read_run
from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device
from ntirekit.measure.runtime import pool_runs
from ntirekit.core.records import read_result, record_path, ResultError, write_json_atomic, write_record

#: Slurm states of a job that ended without a result, in words
STATE_REASONS = {
    "NODE_FAIL": "its node was lost",
    "PREEMPTED": "it was pre-empted",
    "TIMEOUT": "it ran past its time limit",
    "OUT_OF_MEMORY": "it ran out of host memory",
    "CANCELLED": "it was cancelled",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
    "FAILED": "its process failed",
    "INTERRUPTED": "its process was interrupted by a signal",
    "FINISHED": "its process was killed or ended early",
}


def _exception_line(text: str) -> str:
    """The exception line of a Python trace (the last ``SomethingError: ...`` line), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    hit = next((line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line)),
               None)
    return hit or (lines[-1] if lines else "")


def job_reason(job: Any, state: str | None = None) -> tuple[str, str]:
    """(state, one line saying why ``job`` gave no run file); ``state``: the scheduler's last word on it (None:
    submitit's, for local jobs)."""
    state = str(state or job.state or "UNKNOWN").upper()
    if job.paths.result_pickle.exists():
        exc = job.exception()
        if exc is not None:
            return state, f"job {job.job_id} raised {_exception_line(str(exc).split('with trace:', 1)[-1])}"
        return state, f"job {job.job_id} ended ({state}) without writing its run file"
    words = STATE_REASONS.get(state.split()[0], "it ended without a result")
    if state == "UNKNOWN":
        words += " (the scheduler no longer knows its state)"
    log = _exception_line(job.stderr() or "")
    return state, f"job {job.job_id} ended {state}: {words}" + (f" (last log line: {log[:200]})" if log else "")


def _submitter_fingerprint(device: str, threads: int | None) -> dict[str, Any]:
    """This machine's fingerprint of ``device`` (its CPU's where it has no such device: a login node), with
    ``threads`` when known (what a job that never started would have been given)."""
    try:
        fp = fingerprint(resolve_device(device))
    except (RuntimeError, AssertionError, ValueError):
        fp = fingerprint("cpu")
    return {**fp, "threads": threads} if threads else fp


def job_outcome(spec: JobSpec, job: Any, state: str | None = None, reason: str | None = None,
                threads: int | None = None) -> dict[str, Any]:
    """The run file of an ended job, or a failure written in its place. ``state``: what the scheduler last said of
    it; ``reason``: the failure's line when the executor knows better than :func:`job_reason` (the wait limit).
    The failure is filed under the fingerprint the job wrote on start, else under this machine's fingerprint of
    the job's device with ``threads`` (the CPUs it asked for)."""
    run = read_run(spec.run_file)
    if entry_record(run, spec.entry.name) is not None:
        return run
    if job.paths.result_pickle.exists() and job.exception() is None:
        result = job.result()                   # the run file is not visible here yet (a shared file system's lag)
        if isinstance(result, dict) and entry_record(result, spec.entry.name) is not None:
            write_json_atomic(spec.run_file, result)
            return result
    state, why = job_reason(job, state)
    why = reason or why
    started = job_info(run)
    device = started.get("device") or _submitter_fingerprint(spec.options.device, threads)
    rec = failure_record(spec, device, str(job.job_id), state, why)
    run = {"job": {**started, "key": spec.key, "job_id": str(job.job_id), "state": state, "reason": why},
           "records": [rec]}
    write_json_atomic(spec.run_file, run)
    return run


def merge_runs(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record from the ok records of several runs on one device (see the module docstring)."""
    merged = dict(records[0])
    if len(records) > 1 and all(isinstance(r.get("runtime_ms"), dict) for r in records):
        merged["runtime_ms"] = pool_runs([r["runtime_ms"] for r in records])
    if isinstance(merged.get("options"), dict):
        merged["options"] = {**merged["options"], "runs": len(records)}
    return merged


def _by_device(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(fingerprint_id(rec["device"]), []).append(rec)
    return groups


def existing_records(out_dir: Path, entry: str, track: str) -> list[tuple[Path, dict[str, Any]]]:
    """The records of ``entry`` on ``track`` already in ``out_dir``, on any device."""
    found = []
    for path in sorted(out_dir.glob(f"{entry}__{track}__*.json")):
        try:
            found.append((path, read_result(path)))
        except ResultError:
            continue
    return found


def finalize_entry(specs: Sequence[JobSpec], out_dir: Path) -> list[dict[str, Any]]:
    """Write the record(s) of one (entry, track) from its run files; [] while a run is missing."""
    entry, track = specs[0].entry.name, specs[0].track
    mine = [entry_record(read_run(s.run_file), entry) for s in specs]
    if any(r is None for r in mine):
        return []
    failed = [(s.run, r) for s, r in zip(specs, mine) if r is not None and r.get("status") != "ok"]
    if failed:
        run, rec = failed[0]
        rec = dict(rec)
        if len(specs) > 1:
            rec["error"] = f"run {run + 1} of {len(specs)}: {rec.get('error', '')}"
        finals = [rec]
    else:
        finals = [merge_runs(group) for group in _by_device(r for r in mine if r is not None).values()]
    written = {record_path(out_dir, rec) for rec in finals}
    for path, old in existing_records(out_dir, entry, track):
        if path not in written and old.get("status") != "ok":
            path.unlink(missing_ok=True)
    for rec in finals:
        write_record(out_dir, rec)
    return finals


def finalize_baseline(baseline: str, track: str, jobs_dir: Path, out_dir: Path) -> list[dict[str, Any]]:
    """The baseline's record on each device: every ok timing of it in every run file of ``track``."""
    timings = []
    for path in sorted((jobs_dir / "runs").glob(f"*__{track}__run*.json")):
        rec = entry_record(read_run(path), baseline)
        if rec is not None and rec.get("status") == "ok":
            timings.append(rec)
    finals = [merge_runs(group) for group in _by_device(timings).values()]
    for rec in finals:
        write_record(out_dir, rec)
    return finals
