"""Running one entry's evaluation in a child process, with a time limit, a memory limit and a NaN/inf guard.

:func:`evaluate_isolated` runs a track's ``evaluate([entry], options)`` in ``python -m ntirekit.eval.isolate
REQUEST.json`` (a fresh interpreter in its own process group; the request and the result travel as JSON files in a
temporary folder) and returns the entry's record, or a failure record (:func:`ntirekit.core.records.failure`) that
says what went wrong. :func:`call_isolated` runs a plain function of one entry the same way (the checker's
:func:`ntirekit.eval.probe.load_probe`), and returns its dict with ``status``. ``failure_kind`` names the kind:

``crash``
    the process exited with a non-zero status (``os._exit(3)``, an uncaught error outside the track) or was killed by
    a signal (a segfault in an extension); the last line of its output is quoted.
``timeout``
    its evaluation ran past its time limit (``timeout_s``, by default scaled to the work:
    :func:`ntirekit.eval.limits.default_timeout_s`), counted from the child's ready signal so that interpreter and
    torch start-up are not charged to the entry (start-up has its own :data:`STARTUP_TIMEOUT_S`): the whole process
    group (the entry's own children included) is killed with SIGKILL. The record says ``limit: "time"`` (or
    ``"start-up time"``) and ``limit_value``.
``oom``
    it ran out of memory: its process tree held more resident memory than a share of the machine
    (:func:`ntirekit.eval.limits.default_memory_mb`) or, with ``memory_mb``, than its start-up footprint plus
    ``memory_mb`` (this process watches it and kills the tree, ``limit: "memory"``), ``MemoryError``, torch's "can't allocate memory", CUDA out of memory, or SIGKILL from the kernel.
    With an explicit ``memory_mb`` the child also caps itself from inside: on CPU its address space with
    ``RLIMIT_AS`` at its start-up footprint (interpreter, torch, the track's modules, torch's thread pool) plus
    ``memory_mb``; on CUDA (which reserves huge address ranges, so ``RLIMIT_AS`` cannot be used) torch's GPU
    allocator through ``torch.cuda.set_per_process_memory_fraction``.
``suspect``
    (not a failure of the process) its timings are implausible against this process's own clock
    (:mod:`ntirekit.eval.witness`); the record is kept, marked ``"status": "suspect"``, and not ranked.
``nonfinite``
    the model returned NaN or inf. Outside the timing tracks (:attr:`ntirekit.eval.track.Track.times`) the child adds
    a build hook to the entry (:meth:`ntirekit.core.spec.Entry.add_build_hook`) that puts a forward hook on every model
    it builds, raising :class:`ntirekit.eval.inference.NonFiniteOutput` on a non-finite output; timing tracks run
    without it so that it never adds to a timing.
``error``
    the track itself recorded a failure (an exception in the entry's code, bad weights, ...): its record is kept.

The records of other entries are never touched by a failing one.

**Sandbox.** Where bubblewrap works here (:func:`ntirekit.eval.sandbox.bwrap.bwrap_problem`), the child runs under
``bwrap`` (:func:`~ntirekit.eval.sandbox.bwrap.sandboxed_command`): its own PID/network/IPC/UTS namespaces,
``--die-with-parent``, and a file system of the Python runtime (read-only), the entry folder and its resolved weights
file (read-only), the folder of a track module declared outside the kit, and one private scratch folder (request,
result and inputs travel through it); no ``$HOME``, results folder, dataset or other entry. Inputs: a track with a
:class:`~ntirekit.eval.track.ChildPlan` (``psnr``: LR images; ``vqe``: compressed frames and ``qp.txt``) has the
parent write the inputs into scratch; the child writes its uint8 outputs (SR images, enhanced frames) there and the
parent scores them against HR images or clean frames the child never sees, and builds the record. A track without a
plan that reads an image ``--data`` folder (``runtime``, ``overall``) gets numbered LR-only copies (:func:`lr_copy`);
any other plan-less track refuses an untrusted entry with one line (``--trust``). Where bwrap cannot run, one
line on stderr says why and the rlimit child above is used. Every isolated record says
``"sandbox": "bwrap" | "rlimits"`` and keeps the child's output tail (``output``: the last 64 KiB, lines cut at
4 KiB, :mod:`ntirekit.eval.sandbox.capture`); ``entry``, ``track`` and ``device`` are always the parent's own.

Entries are isolated by default when they are *untrusted* (:func:`is_untrusted`): they live under a ``submissions``
folder searched by default, under an ``eval --entries`` folder (:data:`UNTRUSTED_ROOTS_ENV`), or below a folder
holding the :data:`UNTRUSTED_MARKER` file (every folder a submission zip is unpacked into for evaluation carries it);
``eval --trust DIR`` (:data:`TRUSTED_ROOTS_ENV`) runs a folder in process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

import ntirekit

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import error_line, failure, write_json_atomic
from ntirekit.core.spec import Entry, EntrySpec
from ntirekit.data.images import open_image_dataset, write_image
from ntirekit.eval.inference import NonFiniteOutput
from ntirekit.eval.pipeline import available_weights
from ntirekit.eval.limits import (MEMORY_SHARE, TIMEOUT_BASE_S, default_memory_mb, default_timeout_s,
                                  limit_fields, tree_rss_mib)
from ntirekit.eval.sandbox.bwrap import SCRATCH, bwrap_problem, runtime_binds, sandboxed_command
from ntirekit.eval.sandbox.capture import start_tail_reader
from ntirekit.eval.track import EvalOptions, options_from_dict
from ntirekit.eval.tracks import TRACKS, get_track, register
from ntirekit.eval.witness import Witness, timing_verdict
from ntirekit.measure.runtime import witness_to

UNTRUSTED_MARKER = ".ntirekit-untrusted"
#: how often the resident memory of a child's process tree is checked [s]
RSS_POLL_S = 0.5
#: the child's start-up (interpreter, torch, the track's imports) has its own limit, outside ``timeout_s``
STARTUP_TIMEOUT_S = 300.0
#: the largest result file the parent reads back from a child (bytes)
MAX_RESULT_BYTES = 64 * 2**20
#: thread settings passed into a sandbox (its environment is otherwise cleared)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
_OOM_PATTERN = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory|bad_alloc",
                          re.IGNORECASE)


#: environment variables (``os.pathsep``-separated folders) naming untrusted and trusted entry roots; ``ntirekit
#: eval`` sets them from ``--entries`` and ``--trust`` so that job processes it starts judge entries the same way
UNTRUSTED_ROOTS_ENV = "NTIREKIT_UNTRUSTED_ROOTS"
TRUSTED_ROOTS_ENV = "NTIREKIT_TRUSTED_ROOTS"


def _roots(variable: str) -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get(variable, "").split(os.pathsep) if p]


def _below(folder: Path, roots: list[Path]) -> bool:
    return any(folder == root or root in folder.parents for root in roots)


def is_untrusted(entry: Entry) -> bool:
    """Whether ``entry`` runs isolated (sandboxed) by default: not below a trusted root (``$NTIREKIT_TRUSTED_ROOTS``,
    ``eval --trust``), and under the working directory's ``submissions``, below an untrusted root
    (``$NTIREKIT_UNTRUSTED_ROOTS``: ``eval --entries`` folders) or below the marker file (unpacked zips)."""
    folder = entry.folder
    if _below(folder, _roots(TRUSTED_ROOTS_ENV)):
        return False
    if _below(folder, [(Path.cwd() / "submissions").resolve(), *_roots(UNTRUSTED_ROOTS_ENV)]):
        return True
    return any((p / UNTRUSTED_MARKER).is_file() for p in (folder, *folder.parents))


@contextlib.contextmanager
def declared_roots(untrusted: Iterable[str | os.PathLike] = (),
                   trusted: Iterable[str | os.PathLike] = ()) -> Iterator[None]:
    """While inside, ``untrusted`` and ``trusted`` folders are added to this process's (and the job processes it
    starts) untrusted and trusted entry roots."""
    saved = {v: os.environ.get(v) for v in (UNTRUSTED_ROOTS_ENV, TRUSTED_ROOTS_ENV)}
    for variable, folders in ((UNTRUSTED_ROOTS_ENV, untrusted), (TRUSTED_ROOTS_ENV, trusted)):
        paths = [*map(str, _roots(variable)), *(str(Path(f).resolve()) for f in folders)]
        if paths:
            os.environ[variable] = os.pathsep.join(paths)
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def mark_untrusted(folder: str | os.PathLike) -> Path:
    """Mark ``folder`` (and every entry below it) as untrusted: evaluated in a child process by default."""
    marker = Path(folder) / UNTRUSTED_MARKER
    marker.write_text("Entries below this folder come from a submission: ntirekit evaluates them isolated.\n")
    return marker


def _wait(proc: subprocess.Popen, ready: Path, timeout_s: float, rss_limit_mib: float,
          added_mib: float | None = None) -> tuple[str, float] | None:
    """Wait for the child; the limit that ended it (``(kind, value)``, :func:`ntirekit.eval.limits.limit_fields`),
    or None when it ended by itself. The time limit counts from the child's ready signal, so interpreter and torch
    start-up (seconds on a loaded machine) never eat into an entry's time; start-up has its own limit. The resident
    memory of the child's whole process tree is checked every :data:`RSS_POLL_S` against ``rss_limit_mib`` and, when
    ``added_mib`` is given, against its footprint at the ready signal plus ``added_mib`` (the value reported is then
    the limit in effect)."""
    start_by = time.monotonic() + STARTUP_TIMEOUT_S
    deadline: float | None = None
    next_rss = 0.0
    limit = rss_limit_mib
    while proc.poll() is None:
        time.sleep(0.02 if deadline is None else 0.05)
        now = time.monotonic()
        if deadline is None:
            if ready.exists():
                deadline = now + timeout_s
                if added_mib is not None:
                    limit = min(rss_limit_mib, tree_rss_mib(proc.pid) + added_mib)
            elif now > start_by:
                return "start-up time", STARTUP_TIMEOUT_S
        elif now > deadline:
            return "time", timeout_s
        if now >= next_rss:
            next_rss = now + RSS_POLL_S
            if tree_rss_mib(proc.pid) > limit:
                return "memory", round(limit, 1)
    return None


def _thread_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _THREAD_VARIABLES if k in os.environ}


def _last_words(lines: list[str]) -> str:
    """The most telling line of a dead child's output: Python's fatal-error line, else the last exception line,
    else the last line."""
    lines = [line.strip() for line in lines if line.strip()]
    for pattern in (r"^Fatal Python error", r"^[\w.]+(Error|Exception|Exit)\b"):
        hit = next((line for line in reversed(lines) if re.match(pattern, line)), None)
        if hit:
            return hit
    return next((line for line in reversed(lines) if not line.startswith("Extension modules")), "")


#: fields of a child's own record that are not figures (the parent sets entry, track, device, options, split, ...)
_STATUS_FIELDS = ("status", "error", "failure_kind", "versions", "created")


def _declared_only(child: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Of the record a child wrote for a track, the fields the track declares (``record_fields``,
    ``optional_fields``) and the status fields; anything else (a ``psnr_db`` in a runtime record, ``options`` that
    choose its file name, a ``timing_witness``) is dropped. A called function's result (``job["call"]``) is the
    caller's to check and passes whole."""
    track = TRACKS.get(str(job.get("track"))) if "call" not in job else None
    if track is None:
        return dict(child)
    keep = {*track.record_fields, *track.optional_fields, *_STATUS_FIELDS}
    return {k: v for k, v in child.items() if k in keep}


def _failure(entry: Entry, options: EvalOptions, kind: str, message: str) -> dict[str, Any]:
    return failure(entry.name, options.track, fingerprint(resolve_device(options.device)), message,
                   failure_kind=kind, isolated=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _classify(record: dict[str, Any], memory_mb: int | None) -> dict[str, Any]:
    """Name the kind of a failed record produced inside the child (oom, nonfinite or error)."""
    if record.get("status") == "ok":
        return record
    error = str(record.get("error", ""))
    if "NonFiniteOutput" in error or "NaN or inf" in error:
        record.setdefault("failure_kind", "nonfinite")
    elif _OOM_PATTERN.search(error):
        limit = f" (limit {memory_mb} MiB)" if memory_mb else ""
        if not error.startswith("out of memory"):
            record["error"] = f"out of memory{limit}: {error}"
        record.setdefault("failure_kind", "oom")
    else:
        record.setdefault("failure_kind", "error")
    return record


def evaluate_isolated(entry: Entry, options: EvalOptions, *, timeout_s: float | None = None,
                      memory_mb: int | None = None, echo: bool | None = None, sandbox: bool = True) -> dict[str, Any]:
    """The record of ``options.track``'s ``evaluate([entry], options)`` run in a child process, or a failure record
    saying why not.

    ``timeout_s`` bounds the evaluation (None: scaled to the work, :func:`ntirekit.eval.limits.default_timeout_s`);
    the resident memory of the child's process tree is bounded by a share of the machine
    (:func:`ntirekit.eval.limits.default_memory_mb`) and, with ``memory_mb``, by its start-up footprint plus
    ``memory_mb``, which the child then also caps from inside (see the module docstring). The NaN/inf guard is on unless the track times. ``echo`` (default: ``options.progress``)
    passes the child's (bounded) output on to this process's stderr. ``sandbox``: run the child under bwrap where
    it works here (see the module docstring); a track with a :class:`~ntirekit.eval.track.ChildPlan` then has its
    inputs sent and its outputs scored by this process.
    """
    if options.track not in TRACKS:
        return _failure(entry, options, "error", f"unknown track {options.track!r}")
    track = TRACKS[options.track]
    options = track.resolve(options)
    job: dict[str, Any] = {"track": options.track, "track_module": track.evaluate.__module__,
                           "options": dataclasses.asdict(options)}
    plan = track.child_plan
    inputs = collect = None
    folder_data = options.data is not None and Path(str(options.data)).exists()
    if plan is None and folder_data and sandbox_kind(sandbox) == "bwrap":
        if track.entries != "esr":
            return {**_failure(entry, options, "error", f"the {track.name} track cannot run an untrusted entry in "
                               "the sandbox without showing it the reference clips; --trust its folder to run it "
                               "in process"), "sandbox": "bwrap"}

        copy = str(Path(SCRATCH) / "LR")

        def inputs(host: Path) -> dict[str, Any]:
            lr_copy(str(options.data), entry.spec.scale, host)
            return {"options": dataclasses.asdict(dataclasses.replace(options, data=copy))}

        def collect(child: dict[str, Any], host: Path) -> dict[str, Any]:
            # the record names the organizer's dataset, not the copy the child read
            return {k: v.replace(copy, str(options.data)) if isinstance(v, str) else v for k, v in child.items()}
    if plan is not None and sandbox_kind(sandbox) == "bwrap":
        def inputs(host: Path) -> dict[str, Any]:
            call, kwargs = plan.inputs(entry, options, host, Path(SCRATCH))
            return {"call": call, "kwargs": kwargs}

        def collect(child: dict[str, Any], host: Path) -> dict[str, Any]:
            try:
                return plan.collect(entry, options, host, child)
            except Exception as exc:  # noqa: BLE001 - outputs that cannot be scored fail this entry only
                return _failure(entry, options, "error", error_line(exc))
    timeout = (timeout_s, f"{timeout_s:g} s (--timeout)") if timeout_s else default_timeout_s(track, options)
    rec = _run_child(entry, job, check_finite=track.finite_guard, timeout=timeout,
                     memory_mb=memory_mb, echo=options.progress if echo is None else echo,
                     fail=lambda kind, message: _failure(entry, options, kind, message), sandbox=sandbox,
                     inputs=inputs, collect=collect, witness=track.times)
    if plan is None and "weights" in rec:          # the parent's own label: a child cannot claim trained weights
        rec["weights"] = available_weights(entry, options.weights.get(entry.name))
    return rec


def lr_copy(data: str, scale: int, scratch: Path) -> Path:
    """The LR images of dataset ``data`` (never its HR) copied in order to ``scratch/LR/NNNNN.png``: an LR-only dataset
    that a sandboxed child reads instead of the dataset folder."""
    folder = scratch / "LR"     # an LR-named folder is read as LR-only (ntirekit.data.images)
    folder.mkdir()
    for index, pair in enumerate(open_image_dataset(data, scale=scale)):
        write_image(folder / f"{index:05d}.png", pair.lr)     # numbered: in order, and no name leaks
    return folder


def call_isolated(entry: Entry, function: Callable[..., dict[str, Any]], *, timeout_s: float = TIMEOUT_BASE_S,
                  memory_mb: int | None = None, check_finite: bool = True, echo: bool = False,
                  sandbox: bool = True, **kwargs: Any) -> dict[str, Any]:
    """``{"status": "ok", **function(entry, **kwargs)}`` run in a child process, or ``{"status": "failed", "error":
    ..., "failure_kind": ...}`` saying why not. ``function`` is a module-level function (it is imported by name in
    the child) and ``kwargs`` travel as JSON."""
    job = {"call": f"{function.__module__}:{function.__qualname__}", "kwargs": kwargs}

    def fail(kind: str, message: str) -> dict[str, Any]:
        return {"entry": entry.name, "status": "failed", "error": message, "failure_kind": kind, "isolated": True}

    return _run_child(entry, job, check_finite=check_finite, timeout=(timeout_s, f"{timeout_s:g} s"),
                      memory_mb=memory_mb, echo=echo, fail=fail, sandbox=sandbox)


def _sandbox_binds(entry: Entry, job: dict[str, Any]) -> list[Path]:
    """What an untrusted child sees read-only besides :func:`runtime_binds`: its entry folder, its own resolved weights
    file (where it lies outside the folder) and the folder of a track module declared outside the kit (organizer
    code, e.g. a test's track)."""
    binds = [entry.folder]
    explicit = ((job.get("options") or {}).get("weights") or {}).get(entry.name)
    try:
        weights = entry.weights_path(explicit, download=False) if (explicit or entry.spec.weights) else None
    except Exception:  # noqa: BLE001 - a missing or bad checkpoint is the child's failure to report
        weights = None
    if weights is not None and Path(weights).resolve().is_file():
        binds.append(Path(weights).resolve())
    return binds + _outside_code(job)


def _outside_code(job: dict[str, Any]) -> list[Path]:
    """The folder of the job's track module or function when it lies outside the kit (organizer code, e.g. a test's
    track): bound read-only and put on the child's ``sys.path``."""
    module = sys.modules.get(str(job.get("track_module") or job.get("call", "").partition(":")[0]))
    kit = Path(ntirekit.__file__).resolve().parent
    source = getattr(module, "__file__", None)
    if source and kit not in Path(source).resolve().parents:
        return [Path(source).resolve().parent]
    return []


_FALLBACK_SAID: list[str] = []


def sandbox_kind(sandbox: bool = True) -> str:
    """``"bwrap"`` when untrusted children run under bubblewrap here, else ``"rlimits"`` (said once per process on
    stderr, with the reason)."""
    if not sandbox:
        return "rlimits"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if not _FALLBACK_SAID:
        _FALLBACK_SAID.append(problem)
        sys.stderr.write(f"ntirekit: no sandbox ({problem}); untrusted entries run with rlimit isolation only\n")
    return "rlimits"


def _run_child(entry: Entry, job: dict[str, Any], *, check_finite: bool, timeout: tuple[float, str],
               memory_mb: int | None, echo: bool, fail: Callable[[str, str], dict[str, Any]],
               sandbox: bool = True, inputs: Callable[[Path], dict[str, Any]] | None = None,
               collect: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None,
               witness: bool = False) -> dict[str, Any]:
    """Run ``job`` on ``entry`` in ``python -m ntirekit.eval.isolate`` (under bwrap when ``sandbox`` and bwrap works
    here); its record, or ``fail(kind, message)``. ``timeout``: the time limit [s] and how it was chosen;
    ``memory_mb``: the memory the evaluation may add to its start-up footprint (watched here for the whole process
    tree, capped inside the child), besides :func:`ntirekit.eval.limits.default_memory_mb` for the tree. Every record says ``"sandbox": "bwrap" | "rlimits"`` and keeps the
    child's output tail (:mod:`ntirekit.eval.sandbox.capture`) as ``output``.

    ``inputs(scratch_as_seen)`` may put the child's inputs into the scratch folder first and returns changes to the
    job; ``collect(record, scratch)`` turns the child's record into the final one while the scratch folder still
    exists (the parent scores what the child left there). ``witness``: the child's timed calls are witnessed by this
    process's clock and an implausible timing is marked suspect (:mod:`ntirekit.eval.witness`)."""
    kind = sandbox_kind(sandbox)
    fail_kind = fail

    def fail(what: str, message: str) -> dict[str, Any]:  # noqa: F811 - every failure says its sandbox
        return {**fail_kind(what, message), "sandbox": kind}

    with tempfile.TemporaryDirectory(prefix="ntirekit-isolate-") as tmp:
        host = Path(tmp)
        inside = Path(SCRATCH) if kind == "bwrap" else host
        try:
            job = {**job, **(inputs(host) if inputs else {})}
        except Exception as exc:  # noqa: BLE001 - inputs the parent cannot prepare fail this entry only
            return fail("error", error_line(exc))
        watch = Witness() if witness else None
        request = {"folder": str(entry.folder), "spec": entry.spec.to_dict(), **job,
                   "witness_fd": watch.fd if watch else None,
                   "memory_mb": memory_mb, "check_finite": bool(check_finite),
                   "sys_path": [*map(str, _outside_code(job)), *(p for p in sys.path if p)], "result": str(inside / "result.json"),
                   "ready": str(inside / "ready")}
        try:
            (host / "request.json").write_text(json.dumps(request))
        except (TypeError, ValueError) as exc:
            if watch:
                watch.close_unstarted()
            return fail("error", f"options cannot be sent to the child process ({exc})")
        argv = [sys.executable, "-m", "ntirekit.eval.isolate", str(inside / "request.json")]
        variables = {"PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        if kind == "bwrap":
            argv = sandboxed_command(argv, binds=[*runtime_binds(), *_sandbox_binds(entry, job)], scratch=host,
                                     env={**variables, **_thread_env()})
            env = None
        else:
            env = {**os.environ, **variables}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    pass_fds=(watch.fd,) if watch else ())
        except OSError as exc:
            if watch:
                watch.close_unstarted()
            return fail("crash", f"the evaluation process could not be started ({exc})")
        if watch:
            watch.start()
        assert proc.stdout is not None
        reader, tail = start_tail_reader(proc.stdout)
        ready = host / "ready"
        ended_by = None
        try:
            ended_by = _wait(proc, ready, timeout[0], default_memory_mb(), memory_mb)
        finally:
            _kill_group(proc.pid)          # the hung child, or whatever the entry left running
            proc.wait()
            reader.join(timeout=10)
            proc.stdout.close()
            if watch:
                watch.stop()
        output = tail.text()
        if echo and output:
            sys.stderr.write(output)
        records: list[dict[str, Any]] = []
        result_path = host / "result.json"
        if result_path.is_file() and result_path.stat().st_size <= MAX_RESULT_BYTES:
            try:
                records = json.loads(result_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                records = []
        mine = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
        if mine and ended_by is None:
            record = _classify(_declared_only(mine[0], job), memory_mb)
            if collect is not None and record.get("status") == "ok":
                record = collect(record, host)
            own = fail("error", "")       # the parent's own entry, track and device: never the child's
            record.update({k: own[k] for k in ("entry", "track", "device") if k in own})
            record.update(isolated=True, sandbox=kind, output=output)
            return timing_verdict(record, watch) if watch else record
    lines = output.splitlines()
    last = _last_words(lines)
    context = f" (last output: {last[:200]})" if last else ""
    if ended_by is not None:
        limit, value = ended_by
        if limit == "memory":
            share = (f"start-up + {memory_mb} MiB (--memory-mb)" if memory_mb and value < default_memory_mb()
                     else f"{MEMORY_SHARE:g} of the machine's memory")
            message = (f"out of memory: the entry's processes held more than {value:g} MiB resident (limit: {share}); "
                       "they were killed")
            return {**fail("oom", message), **limit_fields(limit, value), "output": output}
        what = f"{timeout[1]} of evaluation" if limit == "time" else f"{value:g} s of start-up"
        return {**fail("timeout", f"timed out after {what}: the evaluation process group was killed"),
                **limit_fields(limit, value), "output": output}
    code = proc.returncode
    if kind == "bwrap" and code is not None and code > 128 and code - 128 in signal.Signals._value2member_map_:
        code = -(code - 128)           # bwrap's init exits with 128 + the signal that killed the child
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if -code == signal.SIGKILL:
            return {**fail("oom", f"out of memory: the evaluation process was killed by SIGKILL "
                                  f"(the kernel's out-of-memory killer sends it){context}"),
                    **limit_fields("memory", None), "output": output}
        return {**fail("crash", f"crashed: the evaluation process was killed by signal {name}{context}"),
                "output": output}
    if _OOM_PATTERN.search(last):
        return {**fail("oom", f"out of memory: {last[:200]}"), "output": output}
    if code:
        return {**fail("crash", f"crashed: the evaluation process exited with status {code}{context}"),
                "output": output}
    return {**fail("crash", f"the evaluation process ended without a result{context}"), "output": output}


# ---------------------------------------------------------------------------------------------------------- child

# ---------------------------------------------------------------------------------------------------------- child

def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def finite_guard(entry: Entry, model: nn.Module) -> None:
    """A build hook (:meth:`Entry.add_build_hook`): ``model``'s forward raises ``NonFiniteOutput`` when its output
    holds NaN or inf."""
    name = entry.name

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        for t in _tensors(output):
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise NonFiniteOutput(f"{name}: model output contains NaN or inf ({bad} of {t.numel()} values)")

    model.register_forward_hook(hook)


def _vm_size() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _limit_memory(memory_mb: int, device: Any) -> str:
    """Cap this process's memory; says how (for the log)."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_mb * 2**20 / total), device)
        return f"GPU allocator capped at {memory_mb} MiB"
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return "memory limit not supported on this platform"
    # Start the intra-op thread pool first so that its stacks and arenas count as start-up, not as the entry's use.
    torch.nn.functional.conv2d(torch.ones(1, 3, 16, 16), torch.ones(4, 3, 3, 3))
    base = _vm_size()
    if base is None:
        return "memory limit not supported on this platform"
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = base + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return f"address space capped at start-up + {memory_mb} MiB"


def _child(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    sys.path[:0] = [p for p in request["sys_path"] if p not in sys.path]
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))          # no core dumps from crashing entries
    except (ImportError, ValueError, OSError):
        pass
    if request.get("witness_fd") is not None:
        witness_to(int(request["witness_fd"]))
    entry = Entry(EntrySpec.from_dict(request["spec"], f"{request['folder']}/entry.toml"), Path(request["folder"]))
    if request["check_finite"]:
        entry.add_build_hook(finite_guard)
    records = _run_call(entry, request) if "call" in request else _run_track(entry, request)
    write_json_atomic(request["result"], records)
    return 0


def _start(request: dict[str, Any], device: torch.device) -> None:
    if request.get("memory_mb"):
        _limit_memory(int(request["memory_mb"]), device)
    Path(request["ready"]).touch()


def _run_track(entry: Entry, request: dict[str, Any]) -> list[dict[str, Any]]:
    options = options_from_dict(request["options"])
    device = resolve_device(options.device)
    records: list[dict[str, Any]] = []
    try:
        if options.track not in TRACKS:      # a track declared outside ntirekit.eval.tracks: its module declares it
            for declared in getattr(importlib.import_module(request["track_module"]), "TRACKS", ()):
                register(declared)
        track = get_track(options.track)
        _start(request, device)
        records.extend(r for r in track.evaluate([entry], track.resolve(options))
                       if r.get("status") != "partial")   # the parent keeps the final record only
    except BaseException as exc:  # noqa: BLE001 - anything the track let through becomes this entry's failure
        records.append(failure(entry.name, options.track, fingerprint(device), exc))
    return records


def _run_call(entry: Entry, request: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        function = _resolve(request["call"])
        _start(request, resolve_device(str(request["kwargs"].get("device") or "cpu")))
        return [{"entry": entry.name, "status": "ok", **function(entry, **request["kwargs"])}]
    except BaseException as exc:  # noqa: BLE001 - a failing entry is a result, not a crash
        return [{"entry": entry.name, "status": "failed", "error": error_line(exc)}]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ntirekit.eval.isolate REQUEST.json (internal: started by evaluate_isolated)")
    sys.exit(_child(sys.argv[1]))
