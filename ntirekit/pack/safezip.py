"""Reading untrusted zip files: vet every member by its metadata, then stream it out under hard limits into one folder.

Nothing is ever written outside the destination folder: members with absolute paths, ``..`` components, drive letters,
control, invisible or text-direction characters in their names (:func:`ntirekit.core.zipvet.name_character_problem`), symlink
or device modes, encryption or an unknown compression method are refused before any byte is extracted; files are
created with ``O_EXCL | O_NOFOLLOW`` below a fresh folder in which the kit never creates links; the zip's permission
bits are never applied.

Zip bombs are stopped three times: by the archive's layout (members whose bytes overlap, or lie outside the archive, are
the overlapping zip bomb: :func:`ntirekit.core.zipvet.layout_problems`), by the sizes the archive *declares* (file count,
total and per-file uncompressed bytes, compression ratio per member and of the whole archive) and by counting the bytes
actually *produced* while decompressing, which stops a member as soon as it outgrows its declared size or the remaining
budget. CRC and decompression errors (corrupt or truncated members) are reported per member; an archive whose central
directory cannot be read (a truncated file) is reported as such.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ntirekit.core.paths import resolves_inside
from ntirekit.pack.report import Report
from ntirekit.core.zipvet import layout_problems, name_character_problem

#: Compression methods Python's zipfile can read; anything else is refused up front.
READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


@dataclass(frozen=True)
class Limits:
    """Hard limits for one archive. The defaults fit a full VQE test-set results zip (thousands of 960×536 frames)."""

    max_files: int = 50_000
    max_total_bytes: int = 16 * 2**30
    max_file_bytes: int = 4 * 2**30
    #: uncompressed/compressed above which a member, or the whole archive (all declared bytes / the archive's size),
    #: counts as a bomb (only over ``ratio_min_bytes`` uncompressed)
    max_ratio: float = 200.0
    ratio_min_bytes: int = 2**20
    chunk: int = 2**20


def member_parts(name: str) -> list[str]:
    """The path components of a member name (``/`` and ``\\`` both separate; empty and ``.`` parts dropped)."""
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _name_problem(info: zipfile.ZipInfo) -> tuple[str, str] | None:
    bad_characters = name_character_problem(info.orig_filename)
    if bad_characters:
        return "bad-name", f"member {bad_characters}"
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute-path", "absolute path in the archive (would be written outside the extraction folder)"
    parts = member_parts(name)
    if ".." in parts:
        return "path-traversal", "'..' in the member path (would be written outside the extraction folder)"
    if not parts:
        return "bad-name", "empty member name"
    return None


def vet_members(zf: zipfile.ZipFile, report: Report, limits: Limits = Limits()) -> list[zipfile.ZipInfo]:
    """The file members that are safe to extract; every problem of every member goes into ``report``.

    When the archive as a whole breaks a limit (too many files, too many bytes) nothing is returned: the content is
    then not looked at, and a warning says so.
    """
    infos = zf.infolist()
    files = [i for i in infos if not i.is_dir()]
    whole_ok = True
    if len(files) > limits.max_files:
        report.error("too-many-files", f"{len(files)} files; the limit is {limits.max_files}")
        whole_ok = False
    total = sum(i.file_size for i in files)
    if total > limits.max_total_bytes:
        report.error("too-large", f"declares {total:,} bytes uncompressed; the limit is {limits.max_total_bytes:,}")
        whole_ok = False
    elif total > limits.ratio_min_bytes and total > limits.max_ratio * max(_archive_bytes(zf), 1):
        report.error("zip-bomb", f"declares {total:,} bytes uncompressed in a {_archive_bytes(zf):,}-byte archive: "
                                 f"beyond {limits.max_ratio:.0f}:1")
        whole_ok = False
    for code, message, name in layout_problems(zf):
        report.error(code, message, name)
        whole_ok = False

    safe: list[zipfile.ZipInfo] = []
    seen: dict[str, str] = {}
    for info in infos:
        name = info.filename
        problems: list[tuple[str, str]] = []
        bad_name = _name_problem(info)
        if bad_name:
            problems.append(bad_name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            problems.append(("symlink", "symbolic link in the archive (links are never extracted)"))
        elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            problems.append(("special-file", "device, FIFO or socket entry in the archive"))
        if info.flag_bits & 0x1:
            problems.append(("encrypted", "encrypted member (submissions must not be password-protected)"))
        if info.compress_type not in READABLE_METHODS:
            problems.append(("unsupported-compression", f"compression method {info.compress_type} is not supported "
                                                        "(use deflate or store)"))
        if not info.is_dir():
            if info.file_size > limits.max_file_bytes:
                problems.append(("too-large", f"declares {info.file_size:,} bytes; the per-file limit is "
                                              f"{limits.max_file_bytes:,}"))
            elif (info.file_size > limits.ratio_min_bytes
                  and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
                problems.append(("zip-bomb", f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                                             f"({info.compress_size:,} -> {info.file_size:,} bytes) is beyond "
                                             f"{limits.max_ratio:.0f}:1"))
        key = "/".join(member_parts(name)).casefold()
        if key and key in seen and not info.is_dir():
            problems.append(("duplicate-name", f"the archive holds this path twice (also as {seen[key]!r})"))
        elif key and not info.is_dir():
            seen[key] = name
        for code, message in problems:
            report.error(code, message, name)
        if not problems and not info.is_dir():
            safe.append(info)
    if not whole_ok:
        report.warn("not-extracted", "the archive breaks a size or layout limit, so its content was not extracted or "
                                     "checked")
        return []
    return safe


def _archive_bytes(zf: zipfile.ZipFile) -> int:
    assert zf.fp is not None, "the archive is closed"
    position = zf.fp.tell()
    size = zf.fp.seek(0, os.SEEK_END)
    zf.fp.seek(position)
    return size


def extract_members(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, report: Report,
                    limits: Limits = Limits()) -> dict[str, Path]:
    """Stream ``members`` (already vetted) into ``dest``; returns ``{normalised path: extracted file}``.

    A member that fails (CRC error, decompression error, outgrows its declared size or the byte budget, clashes with
    another path) is reported, its partial file removed, and extraction goes on with the next member.
    """
    dest = Path(dest)
    budget = limits.max_total_bytes
    written: dict[str, Path] = {}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for info in members:
        parts = member_parts(info.filename)
        rel = "/".join(parts)
        target = dest.joinpath(*parts)
        if ".." in parts or not os.path.normpath(target).startswith(os.path.normpath(dest) + os.sep):
            report.error("path-traversal", "resolves outside the extraction folder", info.filename)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            report.error("path-conflict", "a file of the archive has the name of this member's folder", info.filename)
            continue
        if not resolves_inside(dest, target.parent):
            report.error("path-traversal", "resolves outside the extraction folder", info.filename)
            continue
        try:
            fd = os.open(target, flags, 0o600)
        except (FileExistsError, IsADirectoryError):
            report.error("path-conflict", "clashes with another path of the archive", info.filename)
            continue
        produced, failed = 0, False
        try:
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while True:
                    block = src.read(limits.chunk)
                    if not block:
                        break
                    produced += len(block)
                    if produced > info.file_size or produced > limits.max_file_bytes or produced > budget:
                        report.error("zip-bomb", f"decompresses to more than the {info.file_size:,} bytes it declares "
                                                 "or the archive's byte budget; stopped", info.filename)
                        failed = True
                        break
                    out.write(block)
        except zipfile.BadZipFile as exc:
            code = "crc-error" if "CRC" in str(exc) else "corrupt"
            report.error(code, f"corrupt member ({exc})", info.filename)
            failed = True
        except (zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            report.error("corrupt", f"cannot be decompressed ({type(exc).__name__}: {exc})", info.filename)
            failed = True
        if failed:
            target.unlink(missing_ok=True)
            continue
        budget -= produced
        written[rel] = target
    return written


def open_zip(path: str | os.PathLike, report: Report) -> zipfile.ZipFile | None:
    """The archive, or None with the reason in ``report`` (missing, unreadable, truncated, not a zip)."""
    path = Path(path)
    if not path.is_file():
        report.error("not-found", f"{path} is not a file")
        return None
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        report.error("not-a-zip", f"cannot read the zip's central directory ({exc}): the file is truncated, "
                                  "corrupt or not a zip")
    except (OSError, EOFError, ValueError, NotImplementedError) as exc:
        report.error("not-a-zip", f"cannot open the archive ({type(exc).__name__}: {exc})")
    return None


def safe_extract(path: str | os.PathLike, dest: str | os.PathLike, report: Report,
                 limits: Limits = Limits()) -> dict[str, Path]:
    """Vet and extract the archive at ``path`` into the folder ``dest`` (created if needed)."""
    zf = open_zip(path, report)
    if zf is None:
        return {}
    with zf:
        members = vet_members(zf, report, limits)
        Path(dest).mkdir(parents=True, exist_ok=True)
        return extract_members(zf, members, Path(dest), report, limits)


def nested_zip_names(path: str | os.PathLike) -> list[str]:
    """The member names of a zip inside a submission (the factsheet's LaTeX sources); read-only, nothing extracted.

    Raises ``zipfile.BadZipFile`` (or ``OSError``) when it is not a readable zip.
    """
    with zipfile.ZipFile(path) as zf:
        return [i.filename for i in zf.infolist() if not i.is_dir()]
