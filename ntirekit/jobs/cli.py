"""The command-line options of job execution, shared by ``eval`` and ``regress``.

:func:`executor_options` adds ``--executor``, ``--partition``, ``--time-limit``, ``--mem-gb``, ``--max-parallel``,
``--cpus-per-task``, ``--jobs-dir`` and ``--wait-limit`` to a click command and hands the command one ``executor``
argument: an :class:`~ntirekit.jobs.settings.ExecutorSettings`, or None to evaluate in this process as before.
:func:`baseline_entry` names the entry ``eval`` times beside every job (the ranking protocol's baseline; this module
sits with the commands because it reads the protocols of :mod:`ntirekit.rank`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping

import click

from ntirekit.core.spec import Entry
from ntirekit.jobs.settings import DEFAULT_QUEUE_ALLOWANCE_MIN, DEFAULT_TIME_LIMIT_MIN, EXECUTORS, ExecutorError, \
    ExecutorSettings
from ntirekit.rank import ProtocolError, load_protocol

_OPTIONS = [
    click.option("--executor", "executor_kind", type=click.Choice(["none", *EXECUTORS]), default="none",
                 show_default=True,
                 help="Run one job per entry, track and run through submitit: local (one process per visible GPU "
                      "at a time) or slurm (a job array; a GPU per task only with --device cuda, auto uses the GPU a "
                      "node gives, if any); a rerun submits only what is missing or failed. none: in this process."),
    click.option("--partition", default=None, help="slurm: partition to submit to."),
    click.option("--time-limit", "time_limit_min", type=int, default=DEFAULT_TIME_LIMIT_MIN, show_default=True,
                 help="Time limit per job [min]; a job past it is recorded as failed (TIMEOUT)."),
    click.option("--mem-gb", type=float, default=None, help="slurm: host memory per job [GB]."),
    click.option("--max-parallel", type=int, default=None,
                 help="Concurrent jobs at most (local: default one per visible GPU, 1 without GPU; slurm: the "
                      "array's parallelism)."),
    click.option("--cpus-per-task", type=int, default=None,
                 help="slurm: CPU cores per job (default: the partition's, often 1); a job's torch threads are the "
                      "CPUs it is given."),
    click.option("--jobs-dir", type=click.Path(file_okay=False), default=None,
                 help="Run files and submitit logs (default OUT/.jobs; on Slurm a folder the nodes share)."),
    click.option("--wait-limit", "wait_limit_min", type=float, default=None,
                 help="slurm: the longest the command waits for its jobs [min]; then it cancels the jobs not over "
                      "and records them failed. Default: each wave of jobs at its full --time-limit + 1, plus "
                      f"{DEFAULT_QUEUE_ALLOWANCE_MIN} min of queueing."),
]


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the job options to ``command``; it receives ``executor: ExecutorSettings | None``."""

    @functools.wraps(command)
    def wrapper(*args: Any, executor_kind: str, partition: str | None, time_limit_min: int, mem_gb: float | None,
                max_parallel: int | None, cpus_per_task: int | None, jobs_dir: str | None,
                wait_limit_min: float | None, **kwargs: Any) -> Any:
        settings = None
        if executor_kind != "none":
            try:
                settings = ExecutorSettings(executor_kind, partition, time_limit_min, mem_gb, max_parallel,
                                            cpus_per_task, Path(jobs_dir).absolute() if jobs_dir else None,
                                            wait_limit_min)
            except ExecutorError as exc:
                raise click.ClickException(str(exc)) from None
        try:
            return command(*args, executor=settings, **kwargs)
        except ExecutorError as exc:
            raise click.ClickException(str(exc)) from None

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def baseline_entry(registry: Mapping[str, Entry], protocol_name: str | None) -> Entry | None:
    """The entry a protocol normalises runtimes by (``[baseline] entry``), when the registry has it."""
    if not protocol_name or protocol_name == "none":
        return None
    try:
        name = load_protocol(protocol_name).baseline_entry
    except ProtocolError:
        return None
    return registry[name] if name and name in set(registry) else None
