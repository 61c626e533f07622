"""Run one function of the kit in a jail and talk to it over a channel: the only door through which team code runs.

A :class:`Jail` starts ``python -m ntirekit.jail.child`` under bubblewrap (:mod:`ntirekit.jail.bwrap`; a plain child
process where bwrap cannot run here, said in the report) inside a cgroup of its own (:mod:`ntirekit.jail.cgroup`), with
an empty environment but thread settings. It sends the call (``"ntirekit.module:function"`` and JSON arguments) and
the entry's files over the channel (each opened without following links; they land in the sandbox's ``/entry``
tmpfs), waits for the child's ``ready`` message (interpreter and imports done: start-up has its own limit), and hands
the caller the :class:`~ntirekit.jail.channel.Channel`; the called function and the caller then exchange messages.
The jail knows nothing of tracks: it runs a function and moves bytes.

Limits (:class:`Limits`), each enforced by the kernel where a cgroup could be made, else watched from outside
(advisory; :attr:`JailReport.enforcement` says which):

- **time**: ``time_s`` from the ready message (``startup_s`` before it); the whole jail is killed past it;
- **memory**: everything the jail holds (its processes, their tmpfs and memfd files) may not pass half the machine
  (:func:`default_memory_mb`), and with ``memory_mb`` its footprint at the ready message (interpreter, torch, the
  kit's modules) plus ``memory_mb``: cgroup ``memory.max``, lowered at the ready message; without a cgroup, the
  resident memory of the process tree is polled, which tmpfs and memfd pages escape;
- **processes**: ``pids`` processes and threads: cgroup ``pids.max``; without one, the tree is counted and killed
  past the limit;
- **disk**: none: the sandbox's only writable folders are tmpfs of ``scratch_mb`` (and 256 MiB ``/tmp``,
  ``/dev/shm``), counted as memory.

:meth:`Jail.close` kills whatever is left (process group and cgroup), and returns the :class:`JailReport`: which limit
ended the run (if one did), exit status, the OOM killer's verdict, peak memory, and the child's output tail (bounded,
terminal sequences removed: :func:`ntirekit.core.text.clean_text`; stored in records, never echoed).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ntirekit.core.text import clean_text
from ntirekit.jail import cgroup as cgroups
from ntirekit.jail.bwrap import ENTRY, bwrap_problem, options_bytes, runtime_binds, sandbox_options, sandboxed_command
from ntirekit.jail.capture import start_tail_reader
from ntirekit.jail.channel import Channel, ChannelError
from ntirekit.jail.tree import machine_memory_mib, tree_rss_mib, tree_usage

#: how often the watchdog looks [s]
POLL_S = 0.1
#: file content travels in messages of at most this size [bytes]
FILE_CHUNK = 16 * 2**20
#: thread settings passed into a jail (its environment is otherwise empty)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
_FALLBACK_SAID: list[str] = []


@dataclass(frozen=True)
class Limits:
    """A jail's limits: seconds after the ready message, seconds of start-up, MiB the work may add to the start-up
    footprint (None: only the machine share), processes and threads, MiB of scratch tmpfs."""

    time_s: float = 300.0
    startup_s: float = 300.0
    memory_mb: int | None = None
    pids: int = 512
    scratch_mb: int = 1024


def default_memory_mb() -> int:
    """Half of the machine's physical memory [MiB]: a jail's memory when none is given."""
    return machine_memory_mib() // 2


@dataclass
class JailReport:
    """What happened to a jail (see the module docstring)."""

    sandbox: str
    enforcement: dict[str, str]
    limits: dict[str, float]
    ended_by: tuple[str, float] | None = None
    returncode: int | None = None
    oom_killed: bool = False
    peak_memory_mib: float | None = None
    output: str = ""

    @property
    def signal_name(self) -> str | None:
        """The signal that ended the child, if one did."""
        code = self.returncode
        if code is None:
            return None
        if self.sandbox == "bwrap" and code > 128:
            code = -(code - 128)                # bwrap's init exits 128 + the signal that ended the child
        if code < 0 and -code in signal.Signals._value2member_map_:
            return signal.Signals(-code).name
        return None


def _sandbox_kind(sandbox: bool) -> str:
    if not sandbox:
        return "process"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if not _FALLBACK_SAID:
        _FALLBACK_SAID.append(problem)
        sys.stderr.write(f"ntirekit: no sandbox ({problem}); untrusted entries run in a plain child process\n")
    return "process"


def _gpu_devices() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("nvidia*") if not p.is_dir())


class Jail:
    """Run ``call`` (``"ntirekit.package.module:function"``, called as ``function(channel, **kwargs)``) in a jail.

    ``files`` maps a path relative to the entry folder to a host file, sent to the child before the call (opened
    without following links; a link or anything but a regular file is refused); the function finds them under
    ``kwargs["folder"]``, which the child sets. ``gpu`` adds the NVIDIA device files. Use as a context manager: the
    ``with`` block gets the channel; :attr:`report` is set when it ends.
    """

    def __init__(self, call: str, kwargs: Mapping[str, Any], *, limits: Limits,
                 files: Mapping[str, str | os.PathLike] | None = None, sandbox: bool = True, gpu: bool = False,
                 env: Mapping[str, str] | None = None):
        if not call.startswith("ntirekit.") or ":" not in call:
            raise ValueError(f"a jail runs a kit function ('ntirekit.module:function'), not {call!r}")
        self.call, self.kwargs, self.limits = call, dict(kwargs), limits
        self.files = {str(k): Path(v) for k, v in (files or {}).items()}
        self.kind = _sandbox_kind(sandbox)
        self.gpu = gpu
        self.env = {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ} | dict(env or {})
        self.report: JailReport | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._group: cgroups.Cgroup | None = None
        self._ended_by: tuple[str, float] | None = None
        self._ready_at: float | None = None
        self._done = threading.Event()
        self._tmp: Path | None = None
        self._memory_mib = float(default_memory_mb())

    # ------------------------------------------------------------------------------------------------- start
    def __enter__(self) -> Channel:
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _entry_bytes(self) -> int:
        total = 0
        for path in self.files.values():
            try:
                total += os.lstat(path).st_size
            except OSError:
                pass
        return total

    def _start(self) -> Channel:
        memory = default_memory_mb()
        self._memory_mib = float(memory)
        self._group, why_not = cgroups.create(memory * 2**20, self.limits.pids)
        enforcement = {"time": "watchdog (kills the jail)",
                       "memory": self._group.kind if self._group else f"advisory: resident memory of the process "
                                 f"tree watched ({why_not}; tmpfs and memfd pages are not seen)",
                       "pids": self._group.kind if self._group else "advisory: processes of the tree counted",
                       "disk": "tmpfs size, counted as memory" if self.kind == "bwrap" else
                               "none: a plain child process may write where its user may"}
        self.report = JailReport(self.kind, enforcement, {"time_s": self.limits.time_s, "memory_mib": memory,
                                                          "pids": self.limits.pids,
                                                          "scratch_mib": self.limits.scratch_mb})
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        output_r, output_w = os.pipe()
        argv = [sys.executable, "-m", "ntirekit.jail.child"]
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONFAULTHANDLER": "1", **self.env}
        pass_fds: tuple[int, ...] = ()
        args_r = -1
        if self.kind == "bwrap":
            entry_bytes = self._entry_bytes() + 16 * 2**20
            binds = [*runtime_binds(), *(["/sys"] if self.gpu else [])]      # NVML reads the GPU's /sys entries
            options = sandbox_options(binds=binds, env=env, devices=_gpu_devices() if self.gpu else (),
                                      scratch_bytes=self.limits.scratch_mb * 2**20, entry_bytes=entry_bytes)
            args_r, args_w = os.pipe()
            os.write(args_w, options_bytes(options))
            os.close(args_w)
            argv = sandboxed_command(argv, args_r)
            pass_fds = (args_r,)
            run_env: dict[str, str] = {}
            cwd = "/"
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix="ntirekit-jail-"))
            run_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self._tmp), "TMPDIR": str(self._tmp),
                       "LANG": "C.UTF-8", **env}
            cwd = str(self._tmp)
        if self._group is not None:            # enter the cgroup, then become bwrap (or the child)
            shell = shutil.which("sh") or "/bin/sh"
            argv = [shell, "-c", 'for f in "$@"; do shift; [ "$f" = -- ] && break; echo $$ > "$f"; done; '
                    'unset PWD OLDPWD; exec "$@"', "sh", *map(str, self._group.procs_files), "--", *argv]
        try:
            self._proc = subprocess.Popen(argv, stdin=to_child_r, stdout=from_child_w, stderr=output_w, env=run_env,
                                          cwd=cwd, start_new_session=True, pass_fds=pass_fds)
        finally:
            for fd in (to_child_r, from_child_w, output_w, *([args_r] if args_r >= 0 else [])):
                os.close(fd)
        self._reader, self._tail = start_tail_reader(output_r)
        self._watchdog = threading.Thread(target=self._watch, name="ntirekit-jail-watchdog", daemon=True)
        self._started = time.monotonic()
        self._watchdog.start()
        channel = Channel(from_child_r, to_child_w)
        self._channel = channel
        channel.send({"call": self.call, "kwargs": self.kwargs, "entry": ENTRY if self.kind == "bwrap" else None,
                      "files": sorted(self.files)})
        for rel, path in sorted(self.files.items()):
            self._send_file(channel, rel, path)
        header, _ = channel.receive()                         # an error message raises RemoteError
        if header.get("kind") != "ready":
            raise ChannelError("the jail did not say it was ready")
        self._limit_memory()
        self._ready_at = time.monotonic()
        return channel

    def _limit_memory(self) -> None:
        """With ``memory_mb``: the footprint now plus ``memory_mb`` (never above the machine share)."""
        if not self.limits.memory_mb:
            return
        assert self._proc is not None and self.report is not None
        footprint = self._group.usage_bytes() / 2**20 if self._group else tree_rss_mib(self._proc.pid)
        self._memory_mib = min(self._memory_mib, footprint + self.limits.memory_mb)
        if self._group is not None:
            self._group.set_memory(int(self._memory_mib * 2**20))
        self.report.limits.update(memory_mib=round(self._memory_mib, 1), memory_footprint_mib=round(footprint, 1),
                                  memory_added_mib=self.limits.memory_mb)

    @staticmethod
    def _send_file(channel: Channel, rel: str, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{path} is not a regular file")
            part = 0
            while True:
                chunk = os.read(fd, FILE_CHUNK)
                channel.send({"kind": "file", "path": rel, "part": part, "last": len(chunk) < FILE_CHUNK}, chunk)
                part += 1
                if len(chunk) < FILE_CHUNK:
                    break
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------------------------- watching
    def _watch(self) -> None:
        assert self._proc is not None
        while not self._done.wait(POLL_S):
            if self._proc.poll() is not None:
                return
            now = time.monotonic()
            if self._ready_at is None:
                if now - self._started > self.limits.startup_s:
                    self._end("start-up time", self.limits.startup_s)
                    return
            elif now - self._ready_at > self.limits.time_s:
                self._end("time", self.limits.time_s)
                return
            if self._group is None:
                rss_mib, threads = tree_usage(self._proc.pid)         # one scan of /proc per look
                if rss_mib > self._memory_mib:
                    self._end("memory", round(self._memory_mib, 1))
                    return
                if threads > self.limits.pids:
                    self._end("pids", float(self.limits.pids))
                    return

    def _end(self, limit: str, value: float) -> None:
        if self._ended_by is None:
            self._ended_by = (limit, value)
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if self._group is not None:
            self._group.kill()

    # ----------------------------------------------------------------------------------------------- ending
    def close(self) -> JailReport:
        """Kill what is left, collect the report (idempotent)."""
        if self._done.is_set():
            assert self.report is not None
            return self.report
        self._done.set()
        self._kill()
        report = self.report or JailReport(self.kind, {}, {})
        if self._proc is not None:
            self._proc.wait()
            report.returncode = self._proc.returncode
            self._reader.join(timeout=10)
            report.output = clean_text(self._tail.text())
        channel = getattr(self, "_channel", None)
        if channel is not None:
            for fd in (channel.read_fd, channel.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._group is not None:
            report.oom_killed = self._group.oom_kills() > 0
            report.peak_memory_mib = self._group.peak_mib()
            if report.oom_killed and self._ended_by is None:
                self._ended_by = ("memory", round(self._memory_mib, 1))
            self._group.remove()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        report.ended_by = self._ended_by
        self.report = report
        return report


def describe_end(report: JailReport) -> tuple[str, str]:
    """``(failure kind, one line)`` for a jail that ended without finishing its work: a limit, a signal or an exit
    status."""
    if report.ended_by is not None:
        limit, value = report.ended_by
        if limit == "memory":
            how = report.enforcement.get("memory", "")
            return "oom", f"out of memory: the jail held more than {value:g} MiB ({how}); it was killed"
        if limit == "pids":
            return "error", f"started more than {value:g} processes/threads (limit); the jail was killed"
        phase = "start-up" if limit.startswith("start") else "evaluation"
        return "timeout", f"timed out after {value:g} s of {phase}: the jail was killed"
    name = report.signal_name
    last = _last_words(report.output)
    context = f" (last output: {last})" if last else ""
    if name == "SIGKILL":
        return "oom", ("out of memory: the jail was killed by SIGKILL (the kernel's out-of-memory killer sends it)"
                       + context)
    if name:
        return "crash", f"crashed: killed by signal {name}{context}"
    if report.returncode:
        return "crash", f"crashed: the jail exited with status {report.returncode}{context}"
    return "crash", f"the jail ended without finishing{context}"


def _last_words(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for pattern in (r"^Fatal Python error", r"^[\w.]+(Error|Exception|Exit)\b"):
        hit = next((line for line in reversed(lines) if re.match(pattern, line)), None)
        if hit:
            return hit[:200]
    return next((line for line in reversed(lines) if not line.startswith("Extension modules")), "")[:200]


