"""Bounded capture of an untrusted child's output: the last ``max_bytes`` of it, every line cut to ``max_line`` bytes.

A child can print anything (one 400 MB line, a billion short ones); the organizer must keep only what fits a record.
:class:`TailBuffer` holds at most ``max_bytes + max_line`` bytes whatever it is fed (plus one line of markers); bytes
past ``max_line`` in a line are counted, not kept, so a single enormous line costs ``max_line`` bytes. Read a pipe with
:func:`read_tail` (blocking, until EOF) or :func:`start_tail_reader` (in a daemon thread, for stdout and stderr at
once).

Conventions: sizes in bytes of the raw stream; :meth:`TailBuffer.text` decodes UTF-8 with replacement characters, so a
line cut inside a multi-byte character or arbitrary binary output still gives text.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import BinaryIO

#: What a record keeps of a child's output by default: the last 64 KiB, lines cut at 4 KiB.
MAX_BYTES = 64 * 1024
MAX_LINE = 4 * 1024


class TailBuffer:
    """The last ``max_bytes`` of a byte stream fed in pieces, with lines longer than ``max_line`` cut.

    >>> tail = TailBuffer(max_bytes=64, max_line=4)
    >>> tail.feed(b"abcdefgh\\n12\\n"); tail.text()
    'abcd [4 bytes cut]\\n12\\n'
    """

    def __init__(self, max_bytes: int = MAX_BYTES, max_line: int = MAX_LINE) -> None:
        if not 0 < max_line <= max_bytes:
            raise ValueError(f"need 0 < max_line <= max_bytes (got {max_line}, {max_bytes})")
        self.max_bytes, self.max_line = max_bytes, max_line
        self._lines: deque[bytes] = deque()
        self._kept = 0                      # bytes in self._lines
        self._partial = bytearray()         # the unfinished line, at most max_line bytes
        self._partial_cut = 0               # bytes of the unfinished line not kept
        #: bytes fed in all, complete lines dropped from the front, most bytes ever held (lines + unfinished line)
        self.total_bytes = 0
        self.dropped_lines = 0
        self.peak_bytes = 0

    def feed(self, data: bytes) -> None:
        """Take the next piece of the stream."""
        self.total_bytes += len(data)
        start = 0
        while start <= len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            room = self.max_line - len(self._partial)
            self._partial += data[start:start + max(0, min(room, end - start))]
            self._partial_cut += max(0, end - start - max(0, room))
            if newline < 0:
                break
            self._end_line()
            start = newline + 1
        self.peak_bytes = max(self.peak_bytes, self._kept + len(self._partial))

    def _end_line(self) -> None:
        line = bytes(self._partial) + (f" [{self._partial_cut} bytes cut]".encode() if self._partial_cut else b"")
        self._lines.append(line + b"\n")
        self._kept += len(line) + 1
        self._partial.clear()
        self._partial_cut = 0
        while self._kept > self.max_bytes:
            self._kept -= len(self._lines.popleft())
            self.dropped_lines += 1

    def text(self) -> str:
        """What is kept, as text: a marker line when earlier lines were dropped, the kept lines, the unfinished line."""
        head = f"[{self.dropped_lines} earlier lines dropped]\n" if self.dropped_lines else ""
        tail = bytes(self._partial) + (f" [{self._partial_cut} bytes cut]".encode() if self._partial_cut else b"")
        return head + b"".join(self._lines).decode("utf-8", "replace") + tail.decode("utf-8", "replace")


def read_tail(stream: BinaryIO | int, max_bytes: int = MAX_BYTES, max_line: int = MAX_LINE,
              chunk: int = 64 * 1024, into: TailBuffer | None = None) -> TailBuffer:
    """Read ``stream`` (a binary file object or a file descriptor) to EOF into a :class:`TailBuffer`; at most
    ``chunk`` bytes are read at a time."""
    tail = into if into is not None else TailBuffer(max_bytes, max_line)
    fd = stream if isinstance(stream, int) else stream.fileno()
    while True:
        try:
            data = os.read(fd, chunk)
        except InterruptedError:
            continue
        if not data:
            return tail
        tail.feed(data)


def start_tail_reader(stream: BinaryIO | int, max_bytes: int = MAX_BYTES,
                      max_line: int = MAX_LINE) -> tuple[threading.Thread, TailBuffer]:
    """Read ``stream`` to EOF in a daemon thread; join the thread before reading the buffer."""
    tail = TailBuffer(max_bytes, max_line)
    thread = threading.Thread(target=read_tail, args=(stream,), kwargs={"into": tail}, daemon=True,
                              name="ntirekit-tail-reader")
    thread.start()
    return thread, tail
