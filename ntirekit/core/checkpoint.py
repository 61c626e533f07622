"""Vetting an untrusted checkpoint file before ``torch.load`` reads a byte of it.

``weights_only=True`` stops pickles that run code, but not files that make the loader allocate: ``torch.load`` of a
zip checkpoint (what ``torch.save`` writes: a zip whose ``data.pkl`` holds the pickle and ``data/<n>`` the storages)
allocates each member at the uncompressed size its central directory declares, so a 3 MB file whose ``data.pkl``
inflates to 1 GiB costs 1 GiB before anything is refused. :func:`vet_checkpoint` reads only the zip's metadata (and,
for compressed members, streams them through a bounded buffer) and refuses, with one line, a file that:

- is larger than ``max_file_bytes`` on disk (the only bound on a legacy, non-zip pickled checkpoint);
- holds more than ``max_members`` members, a name with control or text-direction characters, an encrypted member or a
  compression method other than store/deflate (the two PyTorch's reader knows);
- declares more than ``max_total_bytes`` uncompressed, a pickle (``*.pkl``) over ``max_pickle_bytes``, a stored member
  whose two sizes differ, or a compression ratio beyond ``max_ratio`` (per member over ``ratio_min_bytes``, and for the
  whole file);
- has overlapping or out-of-bounds members (:func:`ntirekit.core.zipvet.layout_problems`);
- has a compressed member that does not inflate to exactly the bytes it declares (checked by inflating it through a
  bounded buffer: :mod:`zipfile` stops at the declared size and verifies the CRC).

The file counts as a zip exactly when ``torch.load`` takes it for one: when it starts with a local file header.
``torch.save`` stores members uncompressed, so an honest checkpoint costs one pass over its central directory.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass

from ntirekit.core.zipvet import layout_problems, name_character_problem

#: What ``torch.load`` takes for a zip checkpoint: the first bytes are a local file header.
ZIP_MAGIC = b"PK\x03\x04"
#: Compression methods of PyTorch's zip reader (miniz).
TORCH_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


@dataclass(frozen=True)
class CheckpointLimits:
    """Hard limits for one checkpoint file (bytes unless named otherwise). The defaults admit a model of ~2 G float32
    parameters; a state dict's pickle takes ~100 bytes per tensor, so ``max_pickle_bytes`` admits ~600k tensors."""

    max_file_bytes: int = 8 * 2**30
    max_members: int = 100_000
    max_total_bytes: int = 8 * 2**30
    max_pickle_bytes: int = 64 * 2**20
    #: uncompressed/compressed beyond which a member (over ``ratio_min_bytes``) or the whole file counts as a bomb
    max_ratio: float = 200.0
    ratio_min_bytes: int = 2**20
    chunk: int = 2**20


class CheckpointRefused(ValueError):
    """A checkpoint breaks a limit of :class:`CheckpointLimits`; the message is one line."""


def vet_checkpoint(path: str | os.PathLike, limits: CheckpointLimits = CheckpointLimits()) -> None:
    """Raise :class:`CheckpointRefused` when the file at ``path`` must not reach ``torch.load`` (see the module
    docstring); return None otherwise. ``OSError`` (missing, unreadable file) passes through.

    >>> vet_checkpoint("model.pth")  # doctest: +SKIP
    """
    size = os.path.getsize(path)
    if size > limits.max_file_bytes:
        raise CheckpointRefused(f"the file holds {size:,} bytes; the limit is {limits.max_file_bytes:,}")
    with open(path, "rb") as f:
        if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            return  # a legacy pickled checkpoint: bounded by its size only
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointRefused(f"it starts as a zip but its central directory cannot be read ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise CheckpointRefused(f"{len(infos):,} members; the limit is {limits.max_members:,}")
        for info in infos:
            _vet_member(info, limits)
        total = sum(i.file_size for i in infos)
        if total > limits.max_total_bytes:
            raise CheckpointRefused(f"declares {total:,} bytes uncompressed; the limit is {limits.max_total_bytes:,}")
        if total > limits.ratio_min_bytes and total > limits.max_ratio * max(size, 1):
            raise CheckpointRefused(f"declares {total:,} bytes uncompressed in a {size:,}-byte file: beyond "
                                    f"{limits.max_ratio:.0f}:1 (a zip bomb)")
        for _code, message, name in layout_problems(zf, examples=1):
            raise CheckpointRefused(f"{name!r}: {message}")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                _vet_inflated(zf, info, limits.chunk)


def _vet_member(info: zipfile.ZipInfo, limits: CheckpointLimits) -> None:
    name = info.orig_filename
    bad_characters = name_character_problem(name)
    if bad_characters:
        raise CheckpointRefused(f"member {name!r}: {bad_characters}")
    if info.flag_bits & 0x1:
        raise CheckpointRefused(f"member {name!r} is encrypted")
    if info.compress_type not in TORCH_METHODS:
        raise CheckpointRefused(f"member {name!r} uses compression method {info.compress_type} (PyTorch reads store "
                                "and deflate only)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise CheckpointRefused(f"stored member {name!r} declares {info.file_size:,} bytes but holds "
                                f"{info.compress_size:,}")
    if name.endswith(".pkl") and info.file_size > limits.max_pickle_bytes:
        raise CheckpointRefused(f"member {name!r} declares a {info.file_size:,}-byte pickle; the limit is "
                                f"{limits.max_pickle_bytes:,}")
    if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise CheckpointRefused(f"member {name!r} inflates {info.compress_size:,} -> {info.file_size:,} bytes: "
                                f"beyond {limits.max_ratio:.0f}:1 (a zip bomb)")


def _vet_inflated(zf: zipfile.ZipFile, info: zipfile.ZipInfo, chunk: int) -> None:
    """Inflate ``info`` through a ``chunk``-byte buffer, keeping nothing. :mod:`zipfile` stops at the declared size and
    then checks the CRC, so a stream that inflates to more (or other) bytes than it declares fails here."""
    try:
        with zf.open(info) as src:
            while src.read(chunk):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise CheckpointRefused(f"member {info.orig_filename!r} does not inflate to the {info.file_size:,} bytes it "
                                f"declares ({exc})") from None
