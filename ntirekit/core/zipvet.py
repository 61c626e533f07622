"""Structural checks of an untrusted zip that need no extraction: member names and where members' bytes lie.

Used by the submission checker (:mod:`ntirekit.pack.safezip`) and by checkpoint vetting (:mod:`ntirekit.core.checkpoint`:
a PyTorch ``.pth`` is itself a zip). Nothing here decompresses anything; the functions read the central directory
(already parsed by :class:`zipfile.ZipFile`) and the 30-byte local header of each member.

**Overlap.** A member's *span* is ``[local header offset, end of its compressed data)``, i.e. exactly the bytes that
:mod:`zipfile` reads to extract it. In an honest archive the spans are disjoint and lie before the central directory.
Overlapping spans are the mark of the overlapping-local-header ("quoted-overlap") zip bomb (D. Fifield, *A better zip
bomb*, WOOT 2019): many central-directory entries whose data ranges share one highly compressed stream, so that each
member passes a per-member ratio check while the archive expands to thousands of times its size. Any overlap, and any
span outside ``[0, start of the central directory]``, is refused. Data descriptors (flag bit 3) after the compressed
data are not part of a span; they are never decompressed.
"""

from __future__ import annotations

import struct
import unicodedata
import zipfile
from dataclasses import dataclass

#: Unicode categories refused in names: Cc (C0 controls, DEL, C1 controls), Cf (format characters: the bidi embeddings,
#: overrides and isolates U+202A–U+202E and U+2066–U+2069, zero-width characters, BOM, ...), Cs (lone surrogates),
#: Zl/Zp (line and paragraph separators).
BAD_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the 30-byte local file header (APPNOTE 4.3.7)
_LOCAL_SIGNATURE = b"PK\x03\x04"


def name_character_problem(name: str) -> str | None:
    """Why ``name`` holds a character that has no place in a file name (see :data:`BAD_NAME_CATEGORIES`), or None."""
    for char in name:
        category = unicodedata.category(char)
        if category in BAD_NAME_CATEGORIES:
            kind = "control character" if category == "Cc" else "invisible or text-direction character"
            label = unicodedata.name(char, "")
            return f"name contains the {kind} U+{ord(char):04X}{f' ({label})' if label else ''}"
    return None


@dataclass(frozen=True)
class Span:
    """The bytes of one member in the archive file: ``[start, end)`` (bytes, from the start of the file)."""

    start: int
    end: int
    name: str


def member_spans(zf: zipfile.ZipFile) -> tuple[list[Span], list[tuple[str, str, str]]]:
    """The span of every member, and ``(code, message, member name)`` for members whose local header is unreadable."""
    spans: list[Span] = []
    problems: list[tuple[str, str, str]] = []
    fp = zf.fp
    assert fp is not None, "the archive is closed"
    position = fp.tell()
    try:
        for info in zf.infolist():
            fp.seek(info.header_offset)
            raw = fp.read(_LOCAL_HEADER.size)
            if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_SIGNATURE:
                problems.append(("bad-header", "no local file header where the central directory points",
                                 info.filename))
                continue
            fields = _LOCAL_HEADER.unpack(raw)
            data_start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
            spans.append(Span(info.header_offset, data_start + info.compress_size, info.filename))
    finally:
        fp.seek(position)
    return spans, problems


def layout_problems(zf: zipfile.ZipFile, examples: int = 3) -> list[tuple[str, str, str]]:
    """``(code, message, member name)`` for every structural problem: unreadable local headers, spans outside the
    archive's data area, and overlapping spans (summarised in one problem naming the first ``examples`` pairs)."""
    spans, problems = member_spans(zf)
    data_end = getattr(zf, "start_dir", None)
    for span in spans:
        if span.start < 0 or (data_end is not None and span.end > data_end):
            problems.append(("outside-archive", f"its data [{span.start:,}, {span.end:,}) runs past the archive's data "
                                                f"area (which ends at byte {data_end:,})", span.name))
    pairs: list[tuple[Span, Span]] = []
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    furthest: Span | None = None
    for span in ordered:
        if furthest is not None and span.start < furthest.end:
            pairs.append((furthest, span))
        if furthest is None or span.end > furthest.end:
            furthest = span
    if pairs:
        shown = "; ".join(f"{a.name!r} [{a.start:,}, {a.end:,}) and {b.name!r} [{b.start:,}, {b.end:,})"
                          for a, b in pairs[:examples])
        more = f" and {len(pairs) - examples} more" if len(pairs) > examples else ""
        problems.append(("overlapping-members", f"{len(pairs)} members share bytes with another member (the mark of "
                                                f"an overlapping zip bomb): {shown}{more}", pairs[0][1].name))
    return problems
