"""Hostile PNG files built chunk by chunk: a valid 20000x20000 black PNG of about 1.2 MB, and a small PNG whose image
data inflate to a gigabyte.

The image data of a black RGB image are rows of one filter byte (0) and ``3 * width`` zero samples: all zeros. They
are deflated without ever holding them: one segment of zeros is compressed once and ended with a full flush (byte
aligned, no reference to earlier data), so repeating its bytes gives a valid deflate stream of as many segments;
an empty final fixed-Huffman block (``03 00``) and the Adler-32 of ``n`` zeros (``a = 1``, ``b = n mod 65521``,
RFC 1950 §8.2) close the zlib stream. The chunk layout and CRCs follow the PNG specification (§5.3).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ihdr(width: int, height: int, depth: int = 8, colour: int = 2, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def zeros_stream(total: int, segment: int) -> bytes:
    """A zlib stream of ``total`` zero bytes (``total`` a multiple of ``segment``), built from one compressed
    segment."""
    if total % segment:
        raise ValueError("total must be a multiple of segment")
    co = zlib.compressobj(9)
    first = co.compress(bytes(segment)) + co.flush(zlib.Z_FULL_FLUSH)
    header, body = first[:2], first[2:]
    adler = ((total % 65521) << 16) | 1
    return header + body * (total // segment) + b"\x03\x00" + struct.pack(">I", adler)


def black_png(path: Path, width: int, height: int, rows_per_segment: int = 200, *, declared: tuple[int, int] | None
              = None, idat_piece: int = 1 << 20) -> Path:
    """A black 8-bit RGB PNG of ``width`` x ``height`` (image data deflated as in the module docstring). With
    ``declared``, the header says that size instead (its data then inflate to more or fewer bytes than it holds)."""
    row = 1 + 3 * width
    stream = zeros_stream(row * height, row * rows_per_segment)
    w, h = declared or (width, height)
    idats = b"".join(chunk(b"IDAT", stream[i:i + idat_piece]) for i in range(0, len(stream), idat_piece))
    path.write_bytes(SIGNATURE + ihdr(w, h) + idats + chunk(b"IEND", b""))
    return path
