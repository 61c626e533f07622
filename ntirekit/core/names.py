"""The one rule for entry names, which become file names, record fields and command-line arguments.

An entry name is 1 to :data:`MAX_ENTRY_NAME` characters from ``A-Z a-z 0-9 _ . -`` and is not ``.`` or ``..``: it can
then be used as a file or folder name on every platform without quoting, never names a path outside its folder, and
prints on one line. Anything else is refused with a one-line :class:`EntryNameError` (the offending name is shown
with ``repr``-style escapes and cut to 60 characters, so the message itself stays one short line).
"""

from __future__ import annotations

import re

#: The longest entry name accepted (characters).
MAX_ENTRY_NAME = 100
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-]+")


class EntryNameError(ValueError):
    """An entry name breaks the rule of :mod:`ntirekit.core.names`; the message is one line."""


def _shown(name: str) -> str:
    text = ascii(name)
    return text if len(text) <= 60 else text[:57] + "..."


def entry_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid entry name (one line), or None when it is."""
    if not isinstance(name, str):
        return f"an entry name is text, not {type(name).__name__}"
    if not name:
        return "the entry name is empty"
    if len(name) > MAX_ENTRY_NAME:
        return f"the entry name {_shown(name)} has {len(name)} characters; at most {MAX_ENTRY_NAME} are allowed"
    if name in (".", ".."):
        return f"{name!r} is not an entry name"
    if not _ALLOWED.fullmatch(name):
        bad = next(c for c in name if not _ALLOWED.fullmatch(c))
        return (f"the entry name {_shown(name)} holds {ascii(bad)}; only letters A-Z a-z, digits and _ . - are "
                "allowed")
    return None


def check_entry_name(name: object) -> str:
    """``name`` itself when it is a valid entry name; raises :class:`EntryNameError` otherwise.

    >>> check_entry_name("team04_rlfn")
    'team04_rlfn'
    """
    problem = entry_name_problem(name)
    if problem:
        raise EntryNameError(problem)
    return name  # type: ignore[return-value]  # a str: entry_name_problem checked it
