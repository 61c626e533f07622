"""Which entries are trusted, and the one door through which an entry's code is imported.

**Untrusted** (:func:`is_untrusted`): an entry folder under the working directory's ``submissions``, under a folder
named untrusted (``$NTIREKIT_UNTRUSTED_ROOTS``: every command's ``--entries`` folders, :func:`declared_roots`), or
below the :data:`UNTRUSTED_MARKER` file (every folder a submission zip is unpacked into), unless it lies under a
trusted root (``$NTIREKIT_TRUSTED_ROOTS``: ``--trust DIR``, for code the organizer has reviewed). The kit's baselines
and the folders other installed packages register are trusted.

**The door** (:func:`check_runnable`, called by :meth:`ntirekit.core.spec.Entry.module` before any import of an
entry's code): in the organizer's process an untrusted entry's code is never imported, whatever the command; it runs
only in the jail (:mod:`ntirekit.jail`), whose child calls :func:`enter_jail` before running it. A command that
needs to build an untrusted entry either runs it through the jail or stops with :class:`UntrustedCode`, one line
with the ``--trust`` hint.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator

from ntirekit.core.errors import EntryError

UNTRUSTED_MARKER = ".ntirekit-untrusted"
#: environment variables (``os.pathsep``-separated folders) naming untrusted and trusted entry roots, so that the job
#: processes a command starts judge entries the same way
UNTRUSTED_ROOTS_ENV = "NTIREKIT_UNTRUSTED_ROOTS"
TRUSTED_ROOTS_ENV = "NTIREKIT_TRUSTED_ROOTS"

_IN_JAIL: list[bool] = []


class UntrustedCode(EntryError):
    """An untrusted entry's code was about to be imported in the organizer's process."""


def enter_jail() -> None:
    """Mark this process as a jail's child: from now on entry code may be imported here (called by
    :mod:`ntirekit.jail.child` only)."""
    _IN_JAIL[:] = [True]


def in_jail() -> bool:
    """Whether this process is a jail's child."""
    return bool(_IN_JAIL)


def _roots(variable: str) -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get(variable, "").split(os.pathsep) if p]


def _below(folder: Path, roots: list[Path]) -> bool:
    return any(folder == root or root in folder.parents for root in roots)


def is_untrusted(folder: str | os.PathLike) -> bool:
    """Whether the entry in ``folder`` is untrusted (see the module docstring)."""
    folder = Path(folder).resolve()
    if _below(folder, _roots(TRUSTED_ROOTS_ENV)):
        return False
    if _below(folder, [(Path.cwd() / "submissions").resolve(), *_roots(UNTRUSTED_ROOTS_ENV)]):
        return True
    return any((p / UNTRUSTED_MARKER).is_file() for p in (folder, *folder.parents))


def check_runnable(name: str, folder: str | os.PathLike) -> None:
    """Raise :class:`UntrustedCode` when the entry ``name`` in ``folder`` is untrusted and this process is not a
    jail's child (see the module docstring)."""
    if not in_jail() and is_untrusted(folder):
        raise UntrustedCode(f"{name}: untrusted code ({folder}) is never run in the organizer's process; this "
                            "command runs it in the sandbox or not at all (--trust DIR for code you have reviewed)")


def add_roots(untrusted: Iterable[str | os.PathLike] = (), trusted: Iterable[str | os.PathLike] = ()) -> None:
    """Add ``untrusted`` and ``trusted`` folders to this process's (and its children's) roots."""
    for variable, folders in ((UNTRUSTED_ROOTS_ENV, untrusted), (TRUSTED_ROOTS_ENV, trusted)):
        paths = [*map(str, _roots(variable)), *(str(Path(f).resolve()) for f in folders)]
        if paths:
            os.environ[variable] = os.pathsep.join(dict.fromkeys(paths))


@contextlib.contextmanager
def declared_roots(untrusted: Iterable[str | os.PathLike] = (),
                   trusted: Iterable[str | os.PathLike] = ()) -> Iterator[None]:
    """While inside, ``untrusted`` and ``trusted`` folders are added to the roots (:func:`add_roots`)."""
    saved = {v: os.environ.get(v) for v in (UNTRUSTED_ROOTS_ENV, TRUSTED_ROOTS_ENV)}
    add_roots(untrusted, trusted)
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def mark_untrusted(folder: str | os.PathLike) -> Path:
    """Mark ``folder`` (and every entry below it) as untrusted."""
    marker = Path(folder) / UNTRUSTED_MARKER
    marker.write_text("Entries below this folder come from a submission: ntirekit runs their code sandboxed only.\n")
    return marker
