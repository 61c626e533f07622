"""One entry's evaluation, guarded: any exception it raises becomes that entry's failure record.

Out-of-memory errors are named as such; the others keep their type and first line. KeyboardInterrupt and
GeneratorExit pass through (never yield inside :func:`guard`: it would swallow GeneratorExit).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from ntirekit.core.errors import NtirekitError
from ntirekit.core.records import failure
from ntirekit.core.spec import Entry

__all__ = ["EntryFailed", "guard"]


class EntryFailed(NtirekitError):
    """Raised inside :func:`guard` to end one entry's evaluation with a recorded reason: the message is the record's
    ``error`` as it is, ``kind`` its ``failure_kind`` (``error``, ``crash``, ``timeout``, ``oom``, ``not-exportable``,
    ``graph-differs``...), ``fields`` more record fields (``limit``, ``limit_value``...)."""

    def __init__(self, message: str, kind: str = "error", fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.kind, self.fields = kind, dict(fields or {})


@contextlib.contextmanager
def guard(entry: Entry, track: str, device: dict[str, Any], sink: list[dict[str, Any]]) -> Iterator[None]:
    """Turn any exception of one entry's evaluation into a failure record appended to ``sink``."""
    try:
        yield
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - an entry may fail in any way; record it and go on
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if isinstance(exc, EntryFailed):
            sink.append(failure(entry.name, track, device, str(exc), failure_kind=exc.kind, **exc.fields))
            return
        if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
            exc = EntryFailed(f"out of memory: {str(exc).splitlines()[0] if str(exc) else ''}", "oom")
            sink.append(failure(entry.name, track, device, str(exc), failure_kind="oom"))
            return
        sink.append(failure(entry.name, track, device, exc))
