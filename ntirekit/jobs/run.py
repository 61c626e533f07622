"""Plan the jobs, submit them, watch the whole array on the console, merge the records into ``--out``.

Plan: one job per (entry, track, run); ``--runs N`` makes N jobs on the :data:`~ntirekit.jobs.spec.TIMED_TRACKS`,
one job otherwise. A rerun skips an (entry, track) whose ok record is in ``--out`` (on any device) and every run
whose run file holds an ok record, so it submits only what is missing or failed. A job's paths (``--data``,
``--weights``, ``--save-frames``) and ``NTIREKIT_*`` variables are made absolute here and travel in its spec.

Progress: one line saying what is asked of the executor (Slurm: :func:`~ntirekit.jobs.slurm.request_line`), then one
bar over the jobs with the counts done / failed / running / pending; nothing under ``--quiet``. Each entry's record
is merged into ``--out`` as soon as its last job is over (the baseline's pooled record at the end). Ctrl-C cancels
the jobs still running or queued (their runs stay missing, so the next run submits them again).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tqdm import tqdm

from ntirekit.core.spec import Entry
from ntirekit.jobs.collect import existing_records, finalize_baseline, finalize_entry, job_outcome
from ntirekit.jobs.executors import LocalBatch, local_slots, make_executor
from ntirekit.jobs.settings import ExecutorError, ExecutorSettings
from ntirekit.jobs.slurm import SlurmBatch, request_line
from ntirekit.jobs.spec import TIMED_TRACKS, JobSpec, entry_record, job_variables, read_run, run_file_path, run_job
from ntirekit.eval.runner import _scale, check_data
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import get_track
from ntirekit.core.registry import discover
from ntirekit.eval.regress import options_for


#: track options that name a folder the job writes (made absolute for the job)
PATH_OPTIONS = ("save", "save_sr")


def _job_device(device: str) -> str:
    """A job sees only its own GPU: ``cuda:N`` becomes ``cuda``."""
    return "cuda" if str(device).startswith("cuda") else str(device)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def job_options(options: EvalOptions) -> EvalOptions:
    """The options of every job: ``runs=1``, no progress bars, :func:`_job_device`, and the paths the job reads or
    writes absolute (``--data`` when it names a folder here, ``--weights``, the :data:`PATH_OPTIONS`)."""
    data = options.data
    if data and Path(str(data)).expanduser().exists():
        data = _absolute(str(data))
    extra = {k: _absolute(str(v)) if k in PATH_OPTIONS and v else v for k, v in (options.extra or {}).items()}
    return dataclasses.replace(options, runs=1, progress=False, device=_job_device(options.device), data=data,
                               weights={k: _absolute(v) for k, v in options.weights.items()}, extra=extra)


def plan(entries: list[Entry], options: EvalOptions, jobs_dir: Path, baseline: Entry | None = None,
         isolate: bool | None = None, timeout_s: float | None = None,
         memory_mb: int | None = None, identities: Mapping[int, str] | None = None) -> dict[str, list[JobSpec]]:
    """Every job of every entry, by entry name (the runs of one entry in order); ``identities``: the data's identity
    per scale (:func:`~ntirekit.eval.runner.check_data`), carried in each spec for its failure record."""
    timed = options.track in TIMED_TRACKS
    runs = max(1, options.runs) if timed else 1
    each, variables = job_options(options), job_variables()
    return {entry.name: [JobSpec(entry, k, each, run_file_path(jobs_dir, entry.name, options.track, k),
                                 baseline if timed else None, isolate, timeout_s, memory_mb, variables,
                                 (identities or {}).get(_scale(entry)))     # type: ignore[arg-type]
                         for k in range(runs)]
            for entry in entries}


def _done(spec: JobSpec) -> bool:
    rec = entry_record(read_run(spec.run_file), spec.entry.name)
    return rec is not None and rec.get("status") == "ok"


def _ok_records(out_dir: Path, entry: str, track: str) -> list[dict[str, Any]]:
    return [rec for _path, rec in existing_records(out_dir, entry, track) if rec.get("status") == "ok"]


def run_jobs(entries: list[Entry], options: EvalOptions, out_dir: str | Path, settings: ExecutorSettings,
             baseline: Entry | None = None, isolate: bool | None = None, timeout_s: float | None = None,
             memory_mb: int | None = None) -> list[dict[str, Any]]:
    """Evaluate ``entries`` on ``options.track`` as jobs; the records in ``out_dir`` and returned in entry order
    (the baseline's pooled records, when it is not among the entries, after them).

    ``baseline``: the entry timed in every job of a timed track (None: no pairing). ``isolate``, ``timeout_s`` and
    ``memory_mb`` mean what they mean for :func:`ntirekit.eval.runner.run_track`, inside each job.
    """
    out_dir = Path(out_dir)
    track = get_track(options.track)
    identities = check_data(track, track.resolve(options), entries)     # a bad --data: one error, nothing submitted
    jobs_dir = (Path(settings.jobs_dir) if settings.jobs_dir else out_dir / ".jobs").absolute()   # jobs start anywhere
    planned = plan(entries, options, jobs_dir, baseline, isolate, timeout_s, memory_mb, identities)
    kept = {name: _ok_records(out_dir, name, options.track) for name in planned}
    todo = [s for name, specs in planned.items() if not kept[name] for s in specs if not _done(s)]
    merged: dict[str, list[dict[str, Any]]] = {}    # each entry's records as merged after its latest job

    def merge(spec: JobSpec) -> None:
        merged[spec.entry.name] = finalize_entry(planned[spec.entry.name], out_dir)

    try:
        for spec in todo:                       # a failed run's file: its new job writes the outcome
            spec.run_file.unlink(missing_ok=True)
        if todo:
            _submit_and_watch(todo, options, settings, jobs_dir, merge)
        return _collect(planned, kept, merged, options, out_dir, jobs_dir, baseline)
    except OSError as exc:                      # a full or lost disk: what is written is whole (atomic writes)
        raise ExecutorError(f"cannot write under {out_dir}: {exc.strerror or exc}; the records written so far are "
                            "intact: free the space and run the same command again (it submits only what is "
                            "missing)") from None


def _collect(planned: dict[str, list[JobSpec]], kept: dict[str, list[dict[str, Any]]],
             merged: dict[str, list[dict[str, Any]]], options: EvalOptions, out_dir: Path, jobs_dir: Path,
             baseline: Entry | None) -> list[dict[str, Any]]:
    """The records of every planned entry (kept, or merged from its runs: as merged after its last job, else now),
    then the baseline's pooled records (in its place when it is one of the entries)."""
    finals = {name: kept[name] or merged.get(name) or finalize_entry(specs, out_dir) for name, specs in planned.items()}
    if baseline is not None and options.track in TIMED_TRACKS:
        pooled = finalize_baseline(baseline.name, options.track, jobs_dir, out_dir)
        if pooled:
            finals[baseline.name] = pooled
    return [rec for recs in finals.values() for rec in recs]


def _submit_and_watch(todo: list[JobSpec], options: EvalOptions, settings: ExecutorSettings, jobs_dir: Path,
                      merge: Callable[[JobSpec], Any]) -> None:
    """Submit ``todo``, write each job's outcome as it ends and ``merge`` its entry into ``--out``."""
    note = (lambda line: print(line, file=sys.stderr, flush=True)) if options.progress else (lambda line: None)
    executor = make_executor(settings, jobs_dir / "submitit" / "%j", gpu=str(options.device).startswith("cuda"))
    if settings.kind == "local":
        batch: Any = LocalBatch(executor, run_job, todo, local_slots(settings, _job_device(options.device)),
                                settings.time_limit_min)
    else:
        note(request_line(settings, len(todo), options.device))
        batch = SlurmBatch(executor, run_job, todo, settings.wait_limit_s(len(todo)), note)
    threads = (settings.cpus_per_task or 1) if settings.kind == "slurm" else None   # a job lost unstarted
    done = failed = 0
    shown = ""
    with tqdm(total=len(todo), desc=f"{options.track} jobs ({settings.kind})", unit="job",
              disable=not options.progress) as bar:
        try:
            while True:
                for spec, job, state, reason in batch.tick():
                    rec = entry_record(job_outcome(spec, job, state, reason, threads), spec.entry.name)
                    if rec is not None and rec.get("status") == "ok":
                        done += 1
                    else:
                        failed += 1
                    merge(spec)
                    bar.update(1)
                running, pending = batch.counts()
                counts = f"done {done}, failed {failed}, running {running}, pending {pending}"
                if counts != shown:
                    bar.set_postfix_str(counts, refresh=True)
                    shown = counts
                if batch.done:
                    break
                time.sleep(batch.poll_s)
        except (KeyboardInterrupt, OSError):
            batch.cancel()
            raise


def regress_measure(settings: ExecutorSettings | None, out_dir: str | Path | None, **kwargs: Any,
                    ) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None:
    """The ``measure`` argument of :func:`ntirekit.eval.regress.regress` that runs the re-measurement as jobs (None: in
    this process, as before); ``kwargs`` go to :func:`remeasure_with_jobs`."""
    if settings is None:
        return None
    if out_dir is None:
        raise ExecutorError("--executor needs --out (the folder the jobs' records are collected in)")
    return lambda records: remeasure_with_jobs(records, settings, out_dir, **kwargs)


def remeasure_with_jobs(records: Iterable[Mapping[str, Any]], settings: ExecutorSettings, out_dir: str | Path, *,
                        device: str = "auto", data: str | None = None, entry_roots: Iterable[str] = (),
                        baseline: str | None = None) -> list[dict[str, Any]]:
    """``ntirekit regress``'s re-measurement as jobs: every recorded (entry, track), grouped by the options it ran
    with, evaluated by :func:`run_jobs` (``baseline`` timed in every job of a timed track)."""
    registry = discover(list(entry_roots))
    known = set(registry)                       # (Registry raises EntryError, not KeyError, for unknown names)
    pair = registry[baseline] if baseline in known else None
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[json.dumps(vars(options_for(rec, device=device, data=data)), sort_keys=True, default=str)].append(rec)
    out: list[dict[str, Any]] = []
    for recs in groups.values():
        options = options_for(recs[0], device=device, data=data)
        out += [{"entry": r["entry"], "track": r["track"], "status": "failed",
                 "error": f"no entry named {r['entry']!r} is found now"} for r in recs if r["entry"] not in known]
        entries = [registry[r["entry"]] for r in recs if r["entry"] in known]
        if entries:
            out += run_jobs(entries, options, out_dir, settings, baseline=pair)
    return out
