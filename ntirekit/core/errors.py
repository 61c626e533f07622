"""The kit's one exception tree: everything it raises about bad input derives from :class:`NtirekitError`.

The command line turns an :class:`NtirekitError` into one error line and exit status 1; any other exception is a bug
in the kit (or in an entry's code) and shows its traceback. Subclasses keep a built-in base (``ValueError``,
``RuntimeError``) where callers catch that, so the tree refines rather than replaces the usual types.
"""

from __future__ import annotations

import signal


class NtirekitError(Exception):
    """Bad input the user can fix (a spec, a file, an option, a dataset); the message is one line."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM). A KeyboardInterrupt, so that no entry's guard records it as that
    entry's failure and every ``finally`` (jails, cgroups, temporary folders) runs; ``exit_code`` is ``128 + signal``."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


class EntryError(NtirekitError):
    """A problem with one entry (spec, code or weights); the message is one line naming the entry."""


class DuplicateEntryError(EntryError):
    """Two discovered entries carry the same name."""


class OptionError(NtirekitError, ValueError):
    """An option a track, a command or a function does not accept (an unknown track, a bad value)."""
