"""A kit function of one entry run in the jail, for verdicts that need the entry's code but give no figure.

:func:`call_isolated` runs ``function(entry, **kwargs)`` (a module-level kit function, e.g.
:func:`ntirekit.eval.probe.load_probe`: does the entry build, load strictly and give an output of the right size?) in a
jail (:mod:`ntirekit.jail`) that gets the entry's files and its checkpoint, and returns ``{"status": "ok", **result}``
or ``{"status": "failed", "error": ..., "failure_kind": ..., ...}``. What it returns is the entry's own word, good for
a verdict (``check --load``, ``import-ntire --check``), never for a figure: figures come from the exported graph
(:mod:`ntirekit.eval.measure_graph`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ntirekit.core.spec import Entry, EntrySpec
from ntirekit.core.text import one_line
from ntirekit.eval.sides import entry_files, jail_checkpoint
from ntirekit.jail.channel import Channel, ChannelError, RemoteError
from ntirekit.jail.child import kit_function
from ntirekit.jail.run import Jail, Limits, describe_end

TIMEOUT_S = 300.0


def _call_entry(channel: Channel, *, folder: str, spec: dict[str, Any], call: str,
                kwargs: dict[str, Any]) -> dict[str, Any]:
    """The jail's side: build the :class:`Entry` from its spec and files, run the kit function ``call`` on it."""
    function = kit_function(call)
    entry = Entry(EntrySpec.from_dict(spec, f"{folder}/entry.toml"), Path(folder))
    result = function(entry, **kwargs)
    return result if isinstance(result, dict) else {}


def call_isolated(entry: Entry, function: Callable[..., dict[str, Any]], *, timeout_s: float = TIMEOUT_S,
                  memory_mb: int | None = None, sandbox: bool = True, **kwargs: Any) -> dict[str, Any]:
    """``function(entry, **kwargs)`` in a jail (see the module docstring); ``kwargs`` travel as JSON."""
    def fail(kind: str, message: str, **fields: Any) -> dict[str, Any]:
        return {"entry": entry.name, "status": "failed", "error": one_line(message), "failure_kind": kind,
                "isolated": True, **fields}

    try:
        weights, weights_rel = jail_checkpoint(entry)
    except Exception as exc:  # noqa: BLE001 - a missing or bad checkpoint is this entry's failure
        return fail("error", str(exc))
    files = entry_files(entry, weights, weights_rel)
    jail = Jail("ntirekit.eval.isolate:_call_entry",
                {"spec": entry.spec.to_dict(), "call": f"{function.__module__}:{function.__qualname__}",
                 "kwargs": kwargs},
                limits=Limits(time_s=timeout_s, memory_mb=memory_mb), files=files, sandbox=sandbox)
    try:
        with jail as channel:
            header, _ = channel.receive()             # the function's error raises RemoteError
    except (ChannelError, RemoteError, OSError) as exc:
        report = jail.close()
        if isinstance(exc, RemoteError) and report.ended_by is None:
            return fail("error", str(exc), sandbox=report.sandbox, output=report.output)
        kind, message = describe_end(report)
        limit = {"limit": report.ended_by[0], "limit_value": report.ended_by[1]} if report.ended_by else {}
        return fail(kind, message, sandbox=report.sandbox, output=report.output, **limit)
    report = jail.close()
    result = header.get("result") if isinstance(header.get("result"), dict) else {}
    return {"entry": entry.name, "status": "ok", **result, "isolated": True, "sandbox": report.sandbox,
            "output": report.output}
