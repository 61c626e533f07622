"""Hostile zip files built byte by byte: the overlapping zip bomb and a checkpoint whose pickle inflates to 1 GiB.

Both are *valid* archives (right CRCs, right sizes), so a naive reader extracts or loads them without complaint; the
point of the tests is that the kit refuses them from their metadata.

CRCs of long runs of zeros are computed without touching those bytes: ``crc32(zeros(n), c)`` is an affine function
of ``c`` over GF(2) (zlib's table update is linear in the state when the data byte is 0, and the pre/post inversions
add a constant), so it is kept as 32 columns plus a constant and composed by squaring, as zlib's ``crc32_combine``
does.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import torch

_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_DEFLATED = 8
_STORED = 0

Affine = tuple[list[int], int]  # (image of each state bit, image of 0)


def _apply(f: Affine, c: int) -> int:
    cols, const = f
    out = const
    for j in range(32):
        if c >> j & 1:
            out ^= cols[j]
    return out


def _compose(f: Affine, g: Affine) -> Affine:
    """f after g."""
    linear_f = (f[0], 0)
    return [_apply(linear_f, col) for col in g[0]], _apply(f, g[1])


def crc32_of_zeros(n: int, crc: int = 0) -> int:
    """``zlib.crc32(bytes(n), crc)`` without allocating ``n`` bytes."""
    unit = 1 << 16
    base = zlib.crc32(bytes(unit))
    step: Affine = ([zlib.crc32(bytes(unit), 1 << j) ^ base for j in range(32)], base)
    whole, rest = divmod(n, unit)
    result: Affine = ([1 << j for j in range(32)], 0)  # identity
    while whole:
        if whole & 1:
            result = _compose(step, result)
        step = _compose(step, step)
        whole >>= 1
    return zlib.crc32(bytes(rest), _apply(result, crc))


def _flags(name: bytes) -> int:
    return 0x800 if any(b >= 0x80 for b in name) else 0  # bit 11: the name is UTF-8


def local_header(name: bytes, method: int, crc: int, csize: int, usize: int) -> bytes:
    return _LOCAL.pack(b"PK\x03\x04", 20, 0, _flags(name), method, 0, 0x5821, crc, csize, usize, len(name), 0) + name


def write_archive(path: Path, body: bytes, entries: list[tuple[bytes, int, int, int, int, int]]) -> Path:
    """``body`` (local headers and data) followed by a central directory of ``(name, method, crc, csize, usize,
    offset)`` entries and the end record."""
    central = b"".join(_CENTRAL.pack(b"PK\x01\x02", 20, 0, 20, 0, _flags(name), method, 0, 0x5821, crc, csize, usize,
                                     len(name), 0, 0, 0, 0, 0, offset) + name
                       for name, method, crc, csize, usize, offset in entries)
    end = _END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path


def overlap_bomb(path: Path, members: int = 1100, zeros: int = 2**20 - 64 * 1024) -> Path:
    """D. Fifield's overlapping zip bomb ("A better zip bomb", 2019): one deflate stream of ``zeros`` zero bytes (the
    kernel) at the end; member ``i``'s data is a stored deflate block quoting member ``i+1``'s local header, followed
    by member ``i+1``'s data. Member ``i`` thus inflates to the local headers of all later members plus the kernel:
    every member declares under 1 MiB (below the per-member ratio check), while the archive expands to about
    ``members × zeros`` bytes. Valid CRCs throughout."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = packer.compress(bytes(zeros)) + packer.flush()
    names = [f"f{i:05d}.bin".encode() for i in range(members)]
    headers: list[bytes] = [b""] * members
    tail, data_len = b"", len(kernel)  # member i's output before the zeros, and its compressed length
    for i in reversed(range(members)):
        crc = crc32_of_zeros(zeros, zlib.crc32(tail))
        headers[i] = local_header(names[i], _DEFLATED, crc, data_len, len(tail) + zeros)
        tail = headers[i] + tail
        data_len += 5 + len(headers[i])
    body, entries, offset = io.BytesIO(), [], 0
    for i in range(members):
        entries.append((names[i], _DEFLATED, *_LOCAL.unpack(headers[i][:_LOCAL.size])[7:10], offset))
        body.write(headers[i])
        if i + 1 < members:
            quoted = len(headers[i + 1])
            body.write(b"\x00" + struct.pack("<HH", quoted, quoted ^ 0xFFFF))  # a stored, non-final deflate block
        offset += len(headers[i]) + (5 if i + 1 < members else 0)
    body.write(kernel)
    return write_archive(path, body.getvalue(), entries)


def pickle_bomb_checkpoint(path: Path, inflated: int = 2**30, declared: int | None = None) -> Path:
    """A ``torch.save`` checkpoint of a small state dict whose ``data.pkl`` is deflated and padded after the
    pickle's STOP with ``inflated`` zeros (a whole number of MiB): ``torch.load`` reads it fine, after allocating
    them. ``declared`` (default: the true size) is the uncompressed size the zip states for ``data.pkl``. The zeros
    are deflated as one full-flushed chunk repeated, so building it never holds them."""
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.ones(4, 3, 3, 3), "conv.bias": torch.zeros(4)}, buffer)
    with zipfile.ZipFile(buffer) as honest:
        infos = honest.infolist()
        contents = {info.filename: honest.read(info) for info in infos}
    pkl_name = next(name for name in contents if name.endswith("data.pkl"))
    pickle = contents[pkl_name]
    chunk = 1 << 20
    repeats = inflated // chunk
    packer = zlib.compressobj(1, zlib.DEFLATED, -15)
    head = packer.compress(pickle) + packer.flush(zlib.Z_FULL_FLUSH)
    first = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    assert again == packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH), "full flush resets the stream"
    stream = head + first + again * (repeats - 1) + packer.flush()
    crc = crc32_of_zeros(repeats * chunk, zlib.crc32(pickle))
    body, entries = io.BytesIO(), []
    for name, data in contents.items():
        name_bytes = name.encode()
        if name == pkl_name:
            method, data_crc, stored = _DEFLATED, crc, stream
            size = len(pickle) + repeats * chunk if declared is None else declared
        else:
            method, data_crc, stored, size = _STORED, zlib.crc32(data), data, len(data)
        entries.append((name_bytes, method, data_crc, len(stored), size, body.tell()))
        body.write(local_header(name_bytes, method, data_crc, len(stored), size) + stored)
    return write_archive(path, body.getvalue(), entries)
