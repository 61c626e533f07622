"""The organizer's handles on the two sides of a measurement, in this process or in a jail, behind one interface.

- :func:`team_side`: the entry's own model (:class:`~ntirekit.eval.producer.Producer`): in this process for a
  trusted entry, else in a jail (:mod:`ntirekit.jail`) that gets the entry's files (its folder's regular files,
  links only where they stay inside it, and the checkpoint this process found and verified) and nothing else;
- :func:`graph_side`: the graph the team side exported (:class:`~ntirekit.eval.graph_side.GraphRunner`): in this
  process for a trusted entry, else in a jail that holds the kit's code only.

Both yield an object with the same methods whichever way they run (``run_image``; ``export`` on the team side;
``figures`` and ``memory`` on the graph side). When a jail breaks (a limit, a crash, an error in the entry's code),
the method raises :class:`SideFailure` with the failure's kind, one line (clean: :func:`ntirekit.core.text.one_line`)
and the record fields saying which limit ended it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ntirekit.core.errors import NtirekitError
from ntirekit.core.spec import Entry
from ntirekit.core.text import one_line
from ntirekit.eval.graph_side import MAX_GRAPH_BYTES, ClipGraphRunner, GraphRunner
from ntirekit.eval.guard import EntryFailed
from ntirekit.eval.producer import ClipHarness, Harness, Producer
from ntirekit.graph.errors import NotExportable
from ntirekit.jail.channel import Channel, ChannelError, RemoteError
from ntirekit.jail.run import Jail, JailReport, Limits, describe_end

#: the most bytes of an entry's folder (with its checkpoint) sent into a jail
MAX_ENTRY_BYTES = 4 * 2**30


class SideFailure(EntryFailed):
    """A side of a measurement failed: one line, its ``kind`` (``error``, ``crash``, ``timeout``, ``oom``) and the
    record fields of the limit that ended it (``limit``, ``limit_value``) where one did."""


@dataclass
class SideInfo:
    """How a side ran (record fields): ``sandbox`` (``bwrap``, ``process`` or ``none`` in this process), the limits and
    how each was enforced, the child's output tail."""

    sandbox: str = "none"
    limits: dict[str, Any] = field(default_factory=dict)
    output: str = ""

    def fields(self) -> dict[str, Any]:
        return asdict(self)


def jail_checkpoint(entry: Entry, explicit: str | None = None) -> tuple[Path | None, str | None]:
    """``(checkpoint, its path inside the entry folder as the jail gets it)``: the verified checkpoint of ``entry``
    (``explicit``, else the declared one; never downloaded: :meth:`~ntirekit.core.spec.Entry.weights_path`) at its
    declared path, an explicit file as ``.weights/<name>``; ``(None, None)`` for an entry without weights."""
    path = entry.weights_path(explicit, download=False)
    if path is None:
        return None, None
    rel = entry.spec.weights.file if explicit is None and entry.spec.weights else f".weights/{Path(path).name}"
    return Path(path), rel


def entry_files(entry: Entry, weights: Path | None, weights_rel: str | None) -> dict[str, Path]:
    """The files a jail gets for ``entry``: every regular file below its folder (a link only where it resolves to a
    regular file inside the folder) and the checkpoint ``weights`` as ``weights_rel``; a folder over
    :data:`MAX_ENTRY_BYTES` is an error."""
    root = entry.folder.resolve()
    files: dict[str, Path] = {}
    total = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
        for name in sorted(names):
            path = Path(folder) / name
            resolved = path.resolve()
            if root not in resolved.parents or not resolved.is_file():
                continue                       # a link leaving the folder, or not a regular file: never sent
            total += resolved.stat().st_size
            files[str(path.relative_to(root))] = resolved
    if weights is not None and weights_rel is not None:
        files[weights_rel] = Path(weights).resolve()
        total += files[weights_rel].stat().st_size
    if total > MAX_ENTRY_BYTES:
        raise NtirekitError(f"{entry.name}: the entry folder holds {total / 2**30:.1f} GiB; at most "
                            f"{MAX_ENTRY_BYTES / 2**30:g} GiB are sent to the sandbox")
    return files


def _failure(jail: Jail, exc: BaseException) -> SideFailure:
    """The failure of a jail that broke with ``exc``: kind, one line, and the record fields of how it ran."""
    report = jail.close()
    fields = _info(report).fields()
    if isinstance(exc, RemoteError) and report.ended_by is None:
        message = one_line(str(exc))
        if "NonFiniteOutput" in message or "NaN or inf" in message:
            return SideFailure(message, "nonfinite", fields)
        if re.search(r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory", message, re.I):
            return SideFailure(f"out of memory: {message}", "oom", fields)
        return SideFailure(message, "error", fields)
    kind, message = describe_end(report)
    if isinstance(exc, ChannelError) and not isinstance(exc, RemoteError) and report.ended_by is None \
            and report.returncode == 0:
        kind, message = "error", one_line(str(exc))
    if report.ended_by:
        fields.update(limit=report.ended_by[0], limit_value=report.ended_by[1])
    return SideFailure(one_line(message), kind, fields)


def _info(report: JailReport | None) -> SideInfo:
    if report is None:
        return SideInfo()
    return SideInfo(report.sandbox, {**report.limits, "enforced_by": report.enforcement}, report.output)


class _Remote:
    """Calls over a jail's channel, each failure turned into :class:`SideFailure`."""

    form: str | None = None

    def __init__(self, jail: Jail, channel: Channel, harness: Any):
        self.jail, self.channel, self.harness = jail, channel, harness

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except (ChannelError, RemoteError, OSError) as exc:
            raise _failure(self.jail, exc) from None

    def run_image(self, lr: np.ndarray) -> np.ndarray:
        def call() -> np.ndarray:
            self.channel.send_array(np.ascontiguousarray(lr, dtype=np.uint8))
            return self.channel.receive_array(self.harness.output_shape(lr.shape))[0]
        return self._guard(call)

    def _clip(self, header: dict[str, Any], frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray],
                                                                                  dict[str, Any]]:
        """Send a ``clip`` message and its frames; the output frames and the ``clip-done`` header."""
        def call() -> tuple[list[np.ndarray], dict[str, Any]]:
            self.channel.send({"kind": "clip", "frames": len(frames), **header})
            for frame in frames:
                self.channel.send_array(np.ascontiguousarray(frame, dtype=np.uint8))
            shape = self.harness.output_shape(frames[0].shape)
            out = [self.channel.receive_array(shape)[0] for _ in frames]
            done, _ = self.channel.receive()
            if done.get("kind") != "clip-done":
                raise ChannelError("expected the end of the clip")
            return out, done
        return self._guard(call)

    def end(self) -> None:
        try:
            self.channel.send({"kind": "end"})
            self.channel.receive()
        except (ChannelError, RemoteError, OSError):
            pass

    def _ask(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> dict[str, Any]:
        """Send ``header`` (and ``arrays`` as uint8 array messages after it); the reply's fields but its kind."""
        def call() -> dict[str, Any]:
            self.channel.send(header)
            for array in arrays:
                self.channel.send_array(np.ascontiguousarray(array, dtype=np.uint8))
            reply, _ = self.channel.receive()
            return {k: v for k, v in reply.items() if k != "kind"}
        return self._guard(call)


def timed_export(team: Any, shapes: Sequence[Any]) -> tuple[bytes | None, str | None, float]:
    """The team side's graph file (at most :data:`MAX_GRAPH_BYTES`) for ``shapes`` (input shapes, or a video entry's
    ``(shape, keyword arguments)`` calls), with the seconds the export took: ``(data, None, seconds)``, or
    ``(None, "not exportable: <the entry's line>", seconds)`` when the entry cannot be exported."""
    started = time.perf_counter()
    try:
        return team.export(shapes, MAX_GRAPH_BYTES), None, time.perf_counter() - started
    except NotExportable as exc:
        return None, f"not exportable: {exc}", time.perf_counter() - started


class RemoteTeam(_Remote):
    """The team side in a jail."""

    def export(self, shapes: Sequence[Any], max_bytes: int, kind: str = "shapes") -> bytes:
        """The graph file (nothing else of the reply is kept: every figure about it is this process's own);
        :class:`~ntirekit.graph.errors.NotExportable` with the entry's line. ``shapes``: input shapes
        (``kind="shapes"``) or ``(shape, keyword arguments)`` calls (``"calls"``)."""
        def call() -> bytes:
            items = [list(s) for s in shapes] if kind == "shapes" else [[list(c[0]), dict(c[1])] for c in shapes]
            self.channel.send({"kind": "export", kind: items})
            header, data = self.channel.receive(payload_limit=lambda h: max_bytes if h.get("kind") == "graph" else 0)
            if header.get("kind") == "not-exportable":
                raise NotExportable(one_line(str(header.get("error", ""))))
            if header.get("kind") != "graph":
                raise ChannelError("expected the graph")
            return data
        return self._guard(call)


class LocalTeam:
    """The team side in this process (a trusted entry)."""

    def __init__(self, producer: Producer):
        self.producer, self.form = producer, producer.form

    def run_image(self, lr: np.ndarray) -> np.ndarray:
        return self.producer.run_image(lr)

    def export(self, shapes: Sequence[Sequence[int]], max_bytes: int) -> bytes:
        return self.producer.export(shapes).data


class RemoteGraph(_Remote):
    """The graph side in a jail."""

    def figures(self, input_shape: Sequence[int], fvcore: bool = True, cross_check: bool = False) -> dict[str, Any]:
        return self._ask({"kind": "figures", "input_shape": list(input_shape), "fvcore": fvcore,
                          "cross_check": cross_check})

    def memory(self, images: Sequence[np.ndarray]) -> dict[str, Any]:
        return self._ask({"kind": "memory", "count": len(images)}, images)


class RemoteClipTeam(RemoteTeam):
    """The team side of a video entry in a jail."""

    def run_clip(self, frames: Sequence[np.ndarray], pqf: Sequence[int] | None) -> tuple[list[np.ndarray],
                                                                                         dict[str, Any]]:
        """The entry's output frames and its ``clip-done`` report (calls, attributes, statistics)."""
        return self._clip({"pqf": list(pqf) if pqf is not None else None}, frames)

    def export(self, calls: Sequence[tuple[Sequence[int], dict[str, Any]]],  # type: ignore[override]
               max_bytes: int) -> bytes:
        return super().export(calls, max_bytes, kind="calls")


class RemoteClipGraph(_Remote):
    """The graph side of a video entry in a jail."""

    def run_clip(self, frames: Sequence[np.ndarray], pqf: Sequence[int] | None,
                 attrs: dict[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
        """The graph's output frames and the kit's timing of them."""
        out, done = self._clip({"attrs": attrs, "pqf": list(pqf) if pqf is not None else None}, frames)
        return out, dict(done.get("stats") or {})

    def figures(self, width: int, height: int) -> dict[str, Any]:
        return self._ask({"kind": "figures", "size": [width, height]})


@contextlib.contextmanager
def _opened(jail: Jail, remote: type[_Remote], harness: Any, first: bytes | None = None) -> Iterator[Any]:
    """Start ``jail``, optionally send it a graph, wait for its first message; yield the remote handle; end it."""
    try:
        try:
            channel = jail.__enter__()
            if first is not None:
                channel.send({"kind": "graph"}, first)
            header, _ = channel.receive()
        except (ChannelError, RemoteError, OSError) as exc:
            raise _failure(jail, exc) from None
        handle = remote(jail, channel, harness)
        form = header.get("form")                  # the entry's word, so only one of the kit's own values
        handle.form = form if form in ("deploy", "training") else None
        yield handle
        handle.end()
    finally:
        jail.close()


@contextlib.contextmanager
def team_side(entry: Entry, harness: Harness | ClipHarness, *, jailed: bool, limits: Limits,
              weights: Path | None = None, sandbox: bool = True) -> Iterator[tuple[Any, SideInfo]]:
    """The team side of ``entry`` and how it runs (see the module docstring). ``weights``: the checkpoint this
    process resolved and verified (sent as ``harness.weights``). A :class:`ClipHarness` opens a video entry
    (jailed only)."""
    clips = isinstance(harness, ClipHarness)
    if not jailed:
        if clips:
            raise ValueError("video entries run in this process through the vqe track's own path")
        yield LocalTeam(Producer.of_entry(entry, harness, weights)), SideInfo()
        return
    files = entry_files(entry, weights, harness.weights)
    call = "ntirekit.eval.producer:serve_clips" if clips else "ntirekit.eval.producer:serve"
    jail = Jail(call, {"spec": entry.spec.to_dict(), "harness": asdict(harness)}, limits=limits, files=files,
                sandbox=sandbox, gpu=harness.device.startswith("cuda"))
    info = SideInfo()
    try:
        with _opened(jail, RemoteClipTeam if clips else RemoteTeam, harness) as handle:
            yield handle, info
    finally:
        info.__dict__.update(_info(jail.report).__dict__)


@contextlib.contextmanager
def graph_side(data: bytes, harness: Harness | ClipHarness, *, jailed: bool, limits: Limits,
               sandbox: bool = True) -> Iterator[Any]:
    """The graph side for the graph file ``data`` (see the module docstring)."""
    clips = isinstance(harness, ClipHarness)
    if not jailed:
        yield (ClipGraphRunner if clips else GraphRunner).of_bytes(data, harness)  # type: ignore[arg-type]
        return
    call = "ntirekit.eval.graph_side:serve_clips" if clips else "ntirekit.eval.graph_side:serve"
    jail = Jail(call, {"harness": asdict(harness), "graph_bytes": len(data)}, limits=limits, sandbox=sandbox,
                gpu=harness.device.startswith("cuda"))
    with _opened(jail, RemoteClipGraph if clips else RemoteGraph, harness, first=data) as handle:
        yield handle
