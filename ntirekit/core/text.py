"""Text from untrusted sources made safe to store and show: terminal control sequences and control characters out.

A team's code can print, or put in an exception message, escape sequences that retitle a window, write the
clipboard (OSC 52), move the cursor to overwrite lines, or a carriage return that hides what came before.
:func:`clean_text` keeps what a reader should see: ANSI CSI/OSC/DCS sequences removed, each line reduced to what a
terminal would finally show after its carriage returns (a progress bar's last state), every other control character
(C0 but newline and tab, DEL, C1) removed. Renderers escape what is left for their format (Markdown, HTML, LaTeX:
:mod:`ntirekit.rank.render`).
"""

from __future__ import annotations

import re

#: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC (ESC P|X|^|_ ... ST), and two-byte ESC sequences;
#: also their 8-bit C1 forms
_SEQUENCES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                        r"|(?:\x1b[\]PX^_]|[\x90\x9d\x98\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
                        r"|\x1b[ -/]*[0-~]", re.DOTALL)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str, max_chars: int | None = None) -> str:
    """``text`` without terminal sequences and control characters (newlines and tabs kept; see the module
    docstring), cut to ``max_chars`` when given.

    >>> clean_text("10%\\r50%\\r100%\\n\\x1b]0;owned\\x07ok\\x1b[2K")
    '100%\\nok'
    """
    text = _SEQUENCES.sub("", text)
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return clip(_CONTROLS.sub("", "\n".join(lines)), max_chars)


def clip(text: str, max_chars: int | None = None) -> str:
    """``text`` cut to ``max_chars`` when given and longer (then ending "..."); nothing cleaned."""
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return text


def one_line(text: str, max_chars: int = 300) -> str:
    """:func:`clean_text` folded onto one line (whitespace runs to one space) and cut to ``max_chars``."""
    return clean_text(" ".join(str(text).split()), max_chars)
