"""The bubblewrap (``bwrap``, Debian package ``bubblewrap``) command line of a jail.

:func:`sandboxed_command` gives the child:

- its own user, PID, network, IPC, UTS and (where the kernel has one) cgroup namespaces; every capability dropped;
  no further user namespace (``--disable-userns``, bwrap 0.8.0 on); ``--die-with-parent``; ``--new-session`` (no
  controlling terminal, so no ``TIOCSTI`` keystrokes into the organizer's terminal). PID 1 of its namespace is
  bwrap's own init, so every descendant dies with the main child;
- nothing of the organizer in any ``/proc/*/environ`` or ``cmdline`` it can read: bwrap is started with an empty
  environment and reads its options from a pipe (``--args FD``), so its command line is ``bwrap --args 3 -- PYTHON
  -m ntirekit.jail.child``; the child's environment is only ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and what the
  caller passes (thread counts);
- a file system of the system's ``/usr`` (and its ``/bin``, ``/lib``... links), ``/etc/ld.so.cache``, a fresh
  ``/proc``, a minimal ``/dev`` (plus GPU device files when asked), the read-only ``binds`` at their own paths (the
  Python runtime and the kit's package: :func:`runtime_binds`), and size-capped tmpfs folders only: ``/scratch``
  (working directory and ``$HOME``), ``/entry`` (where the jail writes the entry's files it sent over the channel),
  ``/tmp`` and ``/dev/shm``. Their pages count against the jail's memory limit (:mod:`ntirekit.jail.cgroup`); the
  root and ``/dev`` are then remounted read-only. No host folder is writable, and no host path of the entry, the
  data or the results exists inside.

:func:`bwrap_problem` says once why bwrap cannot run here (not installed, namespaces refused), so that the caller can
fall back to a plain child process and record which one it used.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import ntirekit

#: The sandbox's writable scratch folder (working directory and $HOME there) and its entry folder.
SCRATCH = "/scratch"
ENTRY = "/entry"
#: The top-level system folders bound read-only (or re-created as the same symbolic links) when they exist.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The only files taken from the host's /etc: the dynamic linker's cache (libraries load without a search).
ETC_FILES = ("/etc/ld.so.cache",)
#: The namespaces and process flags every sandbox gets.
ISOLATION = ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             "--hostname", "sandbox")
#: Size of /tmp and /dev/shm inside by default: 256 MiB each.
TMP_BYTES = 256 * 2**20


def runtime_binds() -> list[Path]:
    """The folders the kit's Python needs read-only inside a sandbox: the interpreter's installation
    (``sys.base_prefix``), the environment (``sys.prefix``) and the folder holding the ``ntirekit`` package (for an
    editable install, the package folder only, not the checkout around it)."""
    folders = [Path(sys.base_prefix), Path(sys.prefix), Path(ntirekit.__file__).resolve().parent]
    return _unique(p.resolve() for p in folders)


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def _system_args() -> list[str]:
    args: list[str] = []
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for file in ETC_FILES:
        if os.path.isfile(file):
            args += ["--ro-bind", file, file]
    return args


@functools.cache
def _options(bwrap: str) -> frozenset[str]:
    """The options this bwrap knows (from its ``--help``)."""
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(word for word in (done.stdout + done.stderr).split() if word.startswith("--"))


def sandbox_options(*, binds: Sequence[str | os.PathLike] = (), env: Mapping[str, str] | None = None,
                    devices: Sequence[str | os.PathLike] = (), tmp_bytes: int = TMP_BYTES,
                    scratch_bytes: int = TMP_BYTES, entry_bytes: int = TMP_BYTES, bwrap: str = "bwrap") -> list[str]:
    """The options (passed through ``--args FD``) of the sandbox the module docstring describes.

    Raises ``FileNotFoundError`` when a bind or a device does not exist (a sandbox is never built around a path that
    is not there), ``ValueError`` for a bind that would show ``$HOME``.
    """
    known = _options(bwrap)

    def tmpfs(path: str, size: int) -> list[str]:
        return [*(["--size", str(int(size))] if "--size" in known else []), "--tmpfs", path]

    args = [*ISOLATION, *(["--disable-userns"] if "--disable-userns" in known else []), *_system_args(),
            "--proc", "/proc", "--dev", "/dev"]
    for device in _unique(Path(d).resolve() for d in devices):
        if not device.exists():
            raise FileNotFoundError(f"sandbox device {device} does not exist")
        args += ["--dev-bind", str(device), str(device)]
    args += ["--remount-ro", "/dev", *tmpfs("/dev/shm", tmp_bytes), *tmpfs("/tmp", tmp_bytes),
             *tmpfs(SCRATCH, scratch_bytes), *tmpfs(ENTRY, entry_bytes)]
    home = Path.home().resolve()
    for bind in _unique(Path(p).resolve() for p in binds):
        if not bind.exists():
            raise FileNotFoundError(f"sandbox bind {bind} does not exist")
        if bind == home or bind in home.parents:
            raise ValueError(f"sandbox bind {bind} would show $HOME ({home}) to the sandbox")
        args += ["--ro-bind", str(bind), str(bind)]
    args += ["--remount-ro", "/", "--chdir", SCRATCH, "--clearenv"]
    variables = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SCRATCH, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                 **(env or {})}
    for name, value in variables.items():
        args += ["--setenv", name, value]
    return args


def options_bytes(options: Sequence[str]) -> bytes:
    """``options`` as the NUL-separated block bwrap reads from ``--args FD``."""
    if any("\0" in o for o in options):
        raise ValueError("a sandbox option holds a NUL byte")
    return b"".join(o.encode() + b"\0" for o in options)


def sandboxed_command(argv: Sequence[str], args_fd: int, bwrap: str = "bwrap") -> list[str]:
    """The command line of bwrap reading its options from ``args_fd`` and running ``argv`` (start it with an empty
    environment and ``args_fd`` passed)."""
    if not argv:
        raise ValueError("no command to sandbox")
    return [shutil.which(bwrap) or bwrap, "--args", str(args_fd), "--", *argv]


@functools.cache
def bwrap_problem(bwrap: str = "bwrap") -> str | None:
    """None when ``bwrap`` can build this module's sandbox here; else why not, in one line. Probed once per process
    (a real sandbox running ``true``), so a caller that reports the reason reports it once."""
    program = shutil.which(bwrap)
    if program is None:
        return f"{bwrap} is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, options_bytes(sandbox_options(bwrap=program)))
        os.close(write_fd)
        done = subprocess.run(sandboxed_command([true], read_fd, program), capture_output=True, timeout=30,
                              pass_fds=(read_fd,), env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} cannot run: {type(exc).__name__}: {exc}"
    finally:
        os.close(read_fd)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{bwrap} cannot build a sandbox here: {lines[-1] if lines else f'exit status {done.returncode}'}"
    return None
