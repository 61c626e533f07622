"""The command line that runs an untrusted child under bubblewrap (``bwrap``, Debian package ``bubblewrap``).

:func:`sandboxed_command` wraps ``argv`` so that the child sees:

- its own PID, network, IPC, UTS and user namespaces (``--unshare-pid --unshare-net --unshare-ipc --unshare-uts
  --unshare-user``), a cgroup namespace where the kernel has one: it sees no host process (so it can signal none),
  no network but its own loopback, no host SysV IPC or hostname; every capability dropped; no further user namespace
  (``--disable-userns``, where this bwrap has it: 0.8.0 on);
- ``--die-with-parent`` (the sandbox is killed when the organizer's process dies) and, as PID 1 of its namespace is
  bwrap's own init, every descendant (a ``setsid`` daemon included) is killed by the kernel when the main child ends;
- ``--new-session``: no controlling terminal, so no ``TIOCSTI`` keystrokes into the organizer's terminal;
- a file system made of: the system's ``/usr`` (and its ``/bin``, ``/lib``… links), ``/etc/ld.so.cache`` only from
  ``/etc``, a fresh ``/proc``, a minimal ``/dev``, private tmpfs ``/tmp`` and ``/dev/shm`` of ``tmp_bytes`` each
  (tmpfs pages are host memory that no rlimit counts, hence the bound), the read-only ``binds`` the caller names (at
  their own paths: the Python environment from :func:`runtime_binds`, the entry folder), and the one writable
  ``scratch`` folder (a host folder the parent creates and reads back, mounted at :data:`SCRATCH`, also the working
  directory and ``$HOME``); the root and ``/dev`` are then remounted read-only. Nothing else exists: no host ``$HOME``
  (where the interpreter is installed below it, only that installation), no data or results folder, no other entry;
- a cleared environment: ``PATH``, ``HOME``/``TMPDIR``, ``LANG`` and whatever ``env`` the caller passes.

Everything the child writes outside :data:`SCRATCH` is lost with the sandbox (``/tmp`` is a tmpfs; the binds are
read-only). :func:`bwrap_problem` says once why bwrap cannot run here (not installed, namespaces refused), so that the
caller can fall back to rlimit isolation and record which one it used.

Typical use by a runner::

    if bwrap_problem() is None:
        argv = sandboxed_command([sys.executable, "-m", "ntirekit.child", ...],
                                 binds=[*runtime_binds(), entry.folder], scratch=scratch_dir)
    subprocess.run(argv, ...)
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

#: Where the writable scratch folder appears inside the sandbox (also the working directory and $HOME there).
SCRATCH = "/scratch"
#: The top-level system folders bound read-only (or re-created as the same symbolic links) when they exist.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The only files taken from the host's /etc: the dynamic linker's cache (libraries load without a search).
ETC_FILES = ("/etc/ld.so.cache",)
#: The namespaces and process flags every sandbox gets.
ISOLATION = ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             "--hostname", "sandbox")
#: Size of each of the sandbox's memory-backed folders (/tmp, /dev/shm) by default: 256 MiB.
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


def _existing(paths: Iterable[str | os.PathLike], what: str) -> list[Path]:
    resolved = _unique(Path(p).resolve() for p in paths)
    for path in resolved:
        if not path.exists():
            raise FileNotFoundError(f"sandbox {what} {path} does not exist")
    return resolved


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
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(word for word in (done.stdout + done.stderr).split() if word.startswith("--"))


def sandboxed_command(argv: Sequence[str], *, binds: Sequence[str | os.PathLike] = (),
                      scratch: str | os.PathLike, env: Mapping[str, str] | None = None,
                      devices: Sequence[str | os.PathLike] = (), tmp_bytes: int = TMP_BYTES,
                      bwrap: str = "bwrap") -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` in a sandbox (see the module docstring).

    Args:
        argv: the child's command; its program must lie inside ``binds`` or the system folders.
        binds: folders (or files) made visible read-only at their own (resolved) paths; none may be ``$HOME`` or
            a folder above it.
        scratch: an existing host folder, mounted writable at :data:`SCRATCH`; all that the child can leave behind.
        env: extra environment variables (the rest of the environment is cleared).
        devices: host device files added to the minimal /dev (for a GPU: ``glob("/dev/nvidia*")``).
        tmp_bytes: the size of /tmp and of /dev/shm inside (each; bwrap 0.5.0 on, else unbounded).
        bwrap: the bwrap program.

    Raises ``FileNotFoundError`` when a bind, a device or the scratch folder does not exist (a sandbox must never be
    built around a path that is not there), ``ValueError`` for an empty ``argv`` or a bind that would show ``$HOME``.

    >>> sandboxed_command(["python3", "-c", "pass"], scratch="/tmp")[:2]  # doctest: +SKIP
    ['bwrap', '--unshare-user']
    """
    if not argv:
        raise ValueError("no command to sandbox")
    scratch_path = Path(scratch).resolve()
    if not scratch_path.is_dir():
        raise FileNotFoundError(f"scratch folder {scratch} does not exist")
    known = _options(bwrap)
    size = ["--size", str(tmp_bytes)] if "--size" in known else []
    args = [bwrap, *ISOLATION, *(["--disable-userns"] if "--disable-userns" in known else []), *_system_args(),
            "--proc", "/proc", "--dev", "/dev"]
    for device in _existing(devices, "device"):
        args += ["--dev-bind", str(device), str(device)]
    args += ["--remount-ro", "/dev", *size, "--tmpfs", "/dev/shm", *size, "--tmpfs", "/tmp"]
    home = Path.home().resolve()
    for bind in _existing(binds, "bind"):
        if bind == home or bind in home.parents:
            raise ValueError(f"sandbox bind {bind} would show $HOME ({home}) to the sandbox")
        args += ["--ro-bind", str(bind), str(bind)]
    args += ["--bind", str(scratch_path), SCRATCH, "--remount-ro", "/", "--chdir", SCRATCH, "--clearenv"]
    variables = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SCRATCH, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                 **(env or {})}
    for name, value in variables.items():
        args += ["--setenv", name, value]
    return [*args, "--", *argv]


@functools.cache
def bwrap_problem(bwrap: str = "bwrap") -> str | None:
    """None when ``bwrap`` can build this module's sandbox here; else why not, in one line. Probed once per process
    (a real sandbox running ``true``), so a caller that reports the reason reports it once."""
    program = shutil.which(bwrap)
    if program is None:
        return f"{bwrap} is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        done = subprocess.run(sandboxed_command([true], scratch=scratch, bwrap=program), capture_output=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} cannot run: {type(exc).__name__}: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{bwrap} cannot build a sandbox here: {lines[-1] if lines else f'exit status {done.returncode}'}"
    return None


def bwrap_available(bwrap: str = "bwrap") -> bool:
    """Whether :func:`sandboxed_command` works here (see :func:`bwrap_problem` for the reason when it does not)."""
    return bwrap_problem(bwrap) is None
