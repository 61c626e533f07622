"""The graph layer's errors: a file the organizer refuses to read, and a network that cannot be exported."""

from __future__ import annotations

from ntirekit.core.errors import NtirekitError


class GraphError(NtirekitError, ValueError):
    """A graph file that is refused (malformed, oversized, or naming something outside the allowlist); nothing of it
    has run. The message is one line."""


class NotExportable(NtirekitError, RuntimeError):
    """A network ``torch.export`` cannot turn into a graph the kit accepts; the message is one line."""
