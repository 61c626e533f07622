"""Framed messages between the organizer's process and a jailed child, over a pair of pipes.

A message is a header (a JSON object) and an optional payload (bytes)::

    uint32 header length | header (UTF-8 JSON) | uint64 payload length | payload      (little endian)

The reader bounds everything before it reads it: the header by ``max_header`` bytes, the payload by a limit the
caller computes from the header (:meth:`Channel.receive`'s ``payload_limit``: for an image it is the exact size the
organizer expects, so a child cannot make it read one byte more). Arrays travel as ``{"kind": "array", "dtype",
"shape"}`` headers with their raw C-contiguous bytes (:meth:`Channel.send_array`, :meth:`Channel.receive_array`).
A side that fails says so with an ``{"kind": "error", "error": <one line>}`` message; receiving one raises
:class:`RemoteError` (every receive does), so no caller checks for it. Nothing here decodes an image, follows a path or unpickles anything.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ntirekit.core.errors import NtirekitError

_HEADER = struct.Struct("<I")
_PAYLOAD = struct.Struct("<Q")
#: the largest header either side accepts by default [bytes]
MAX_HEADER = 4 * 2**20
#: dtypes an array may have on the wire
ARRAY_DTYPES = ("uint8", "float32", "float64", "int64")


class ChannelError(NtirekitError, RuntimeError):
    """The other side broke the protocol (malformed or oversized message)."""


class ChannelClosed(ChannelError):
    """The other side closed its end (or died) before a whole message arrived."""


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        try:
            chunk = os.read(fd, min(n - got, 1 << 20))
        except InterruptedError:
            continue
        except OSError as exc:
            raise ChannelClosed(f"the channel broke ({exc})") from None
        if not chunk:
            raise ChannelClosed("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view[: 1 << 20])
        except InterruptedError:
            continue
        except OSError as exc:
            raise ChannelClosed(f"the channel broke ({exc})") from None
        view = view[written:]


class Channel:
    """One side of a conversation: reads from ``read_fd``, writes to ``write_fd``."""

    def __init__(self, read_fd: int, write_fd: int, max_header: int = MAX_HEADER):
        self.read_fd, self.write_fd, self.max_header = read_fd, write_fd, max_header

    def send(self, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
        """Send one message."""
        text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
        _write_all(self.write_fd, _HEADER.pack(len(text)) + text + _PAYLOAD.pack(len(payload)))
        if len(payload):
            _write_all(self.write_fd, payload)

    def receive(self, payload_limit: int | Callable[[dict[str, Any]], int] = 0) -> tuple[dict[str, Any], bytes]:
        """The next message ``(header, payload)``. ``payload_limit``: the most payload bytes accepted, or a function
        of the header giving it (checked before a byte of the payload is read); a larger payload is a
        :class:`ChannelError`. An ``error`` message (the other side's failure) raises :class:`RemoteError` with its
        one line."""
        (length,) = _HEADER.unpack(_read_exactly(self.read_fd, _HEADER.size))
        if length > self.max_header:
            raise ChannelError(f"a message header of {length} bytes is over the {self.max_header}-byte limit")
        try:
            header = json.loads(_read_exactly(self.read_fd, length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ChannelError("a message header is not JSON") from None
        if not isinstance(header, dict):
            raise ChannelError("a message header is not a JSON object")
        (size,) = _PAYLOAD.unpack(_read_exactly(self.read_fd, _PAYLOAD.size))
        limit = payload_limit(header) if callable(payload_limit) else payload_limit
        if size > limit:
            raise ChannelError(f"a {str(header.get('kind'))[:40]!r} message carries {size} bytes; at most {limit} "
                               "were expected")
        payload = _read_exactly(self.read_fd, size) if size else b""
        if header.get("kind") == "error":
            raise RemoteError(str(header.get("error", "")))
        return header, payload

    def send_array(self, array: np.ndarray, **fields: Any) -> None:
        """Send ``array`` (C-contiguous bytes) with ``fields`` in its header."""
        array = np.ascontiguousarray(array)
        if array.dtype.name not in ARRAY_DTYPES:
            raise ChannelError(f"arrays of dtype {array.dtype.name} are not sent")
        self.send({"kind": "array", "dtype": array.dtype.name, "shape": list(array.shape), **fields},
                  memoryview(array).cast("B"))

    def receive_array(self, shape: Sequence[int], dtype: str = "uint8") -> tuple[np.ndarray, dict[str, Any]]:
        """An array of exactly ``shape`` and ``dtype`` and its header; anything else (another message kind, shape
        or dtype) is a :class:`ChannelError` before its payload is read, except an ``error`` message, which raises
        :class:`RemoteError` with the other side's one line (:meth:`receive`)."""
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header, payload = self.receive(lambda h: expected if _is_array(h, shape, dtype) else 0)
        if not _is_array(header, shape, dtype) or len(payload) != expected:
            raise ChannelError(f"expected a {dtype} array of shape {list(shape)}, got "
                               f"{_describe(header)}")
        return np.frombuffer(payload, dtype=dtype).reshape(tuple(shape)), header


    def receive_images(self, count: int) -> list[np.ndarray]:
        """``count`` uint8 arrays, each as large as its header declares (:func:`image_bytes`)."""
        images = []
        for _ in range(count):
            header, payload = self.receive(payload_limit=image_bytes)
            images.append(np.frombuffer(payload, dtype=np.uint8).reshape(header["shape"]))
        return images

    def serve(self, handlers: Mapping[str, Callable[[dict[str, Any], bytes], None]]) -> dict[str, Any]:
        """Answer messages with ``handlers[kind](header, payload)`` until an ``end`` message (an ``array`` message
        may carry its uint8 pixels, :func:`image_bytes`; any other kind no payload); an unknown kind is an error."""
        while True:
            header, payload = self.receive(payload_limit=image_bytes)
            kind = header.get("kind")
            if kind == "end":
                return {}
            if kind not in handlers:
                raise ChannelError(f"unexpected message {str(kind)[:40]!r}")
            handlers[kind](header, payload)


def image_bytes(header: dict[str, Any]) -> int:
    """The payload an ``array`` message of uint8 pixels may carry: its declared shape's size (0 for other kinds)."""
    shape = header.get("shape") if header.get("kind") == "array" and header.get("dtype") == "uint8" else None
    ok = isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    return int(np.prod(shape, dtype=np.int64)) if ok else 0


def image_of(header: dict[str, Any], payload: bytes) -> np.ndarray:
    """The uint8 array an ``array`` message carries."""
    return np.frombuffer(payload, dtype=np.uint8).reshape(header["shape"])


class RemoteError(NtirekitError, RuntimeError):
    """The other side reported an error (its message, as it sent it: clean it before showing it)."""


def _is_array(header: dict[str, Any], shape: Sequence[int], dtype: str) -> bool:
    return header.get("kind") == "array" and header.get("dtype") == dtype and header.get("shape") == list(shape)


def _describe(header: dict[str, Any]) -> str:
    kind = str(header.get("kind"))[:40]
    if kind == "array":
        return f"a {str(header.get('dtype'))[:20]} array of shape {str(header.get('shape'))[:60]}"
    return f"a {kind!r} message"
