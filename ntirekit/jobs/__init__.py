"""Many entries on many GPUs and nodes: one job per (entry, track, run), run through ``submitit``.

``ntirekit eval --executor local|slurm`` (and ``regress``) hands every (entry, track, run) to a fresh process on one
exclusive GPU: the local executor runs at most one job per visible GPU at a time (without a GPU, ``--max-parallel``
jobs on the CPU, default 1); Slurm gets one job array, one task per job, ``--gpus-per-node=1`` with ``--device
cuda`` (``auto``: the GPU a node gives, if any), watched with ``squeue`` (no accounting needed). Each job calls
:func:`ntirekit.eval.runner.run_track` exactly as in-process evaluation does (untrusted entries isolated the same way) and
keeps its records in a run file; the submitting process merges the runs into ``--out`` under the same file names and
contents as an in-process run (timings and dates aside), each entry as soon as its jobs are over. A rerun submits only
what is missing or failed; a job that is lost, killed, pre-empted or runs out of time becomes a failure record saying
so, and the command never waits past its wait limit.

Comparable across machines: on the timed tracks (``runtime``, ``overall``) every job also times the protocol's
baseline entry in the same process on the same GPU, and the baseline's record on each device pools those timings, so
``ntirekit leaderboard --baseline measured`` ranks runtime ratios from different GPUs; without it, mixed devices are
refused as before.

Modules: :mod:`~ntirekit.jobs.settings` (the settings, the error), :mod:`~ntirekit.jobs.spec` (what one job runs,
inside the job), :mod:`~ntirekit.jobs.executors` (submitit's local executor, GPU slots),
:mod:`~ntirekit.jobs.slurm` (what the kit asks Slurm for, the array watched with squeue), :mod:`~ntirekit.jobs.collect`
(job outcomes into records, runs merged into ``--out``), :mod:`~ntirekit.jobs.run` (plan, submit, watch, collect),
:mod:`~ntirekit.jobs.cli` (the command-line options).
"""

from ntirekit.jobs.settings import ExecutorError, ExecutorSettings
from ntirekit.jobs.run import regress_measure, remeasure_with_jobs, run_jobs

__all__ = ["ExecutorError", "ExecutorSettings", "regress_measure", "remeasure_with_jobs", "run_jobs"]
