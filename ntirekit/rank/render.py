r"""Leaderboards as people read them: terminal table, Markdown, CSV, JSON and LaTeX (report style).

Every format shows the same rows in the same order (ranked, then reference rows, then the rows not ranked with their
reason, then the rows measured with random weights), and every format has a weights column (``pretrained``,
``random``, ``published``; ``–`` where the records do not say). Text formats print each ranked metric as
``value (rank)``, e.g. ``27.11 (1)``, and several runs as ``mean±std``; a runtime that cannot rank
(:mod:`ntirekit.rank.timing`) is marked ``*`` (``27.11*``) and the notes say why; CSV and JSON carry the unrounded
values, the ranks, the spread and the runtime caveat (``runtime_caveat``) in fields of their own.

Markdown: every cell, heading and note is escaped (:func:`markdown_escape`: no link, image, HTML tag or emphasis a
team's text could make); the terminal table drops terminal sequences and control characters. LaTeX: every cell,
heading and note is escaped (:func:`latex_escape`): the ten special characters, ``–`` as ``--``,
``<``, ``>``, ``|``, the mathematical signs, and command-line options as ``\texttt{-{}-allow-random}`` (``-{}-``
keeps TeX from joining two hyphens into a dash).
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Callable, Iterable, Mapping

from tabulate import SEPARATING_LINE, tabulate

from ntirekit.core.text import one_line
from ntirekit.core.errors import OptionError
from ntirekit.rank.leaderboard import (NOT_RANKED, RANDOM, RANKED, REFERENCE, STATUSES, Leaderboard, Row,
                                       build_leaderboard)
from ntirekit.rank.metrics import METRICS

FORMATS = ("table", "md", "csv", "json", "latex")


def _decimals(lb: Leaderboard, metric: str) -> int:
    return 3 if metric in lb.normalised else METRICS[metric].decimals


#: the mark of a runtime that cannot rank
UNSTEADY = "*"


def _value(lb: Leaderboard, row: Row, metric: str, pm: str, missing: str) -> str:
    stat = row.values.get(metric)
    if stat is None:
        return missing
    d = _decimals(lb, metric)
    text = f"{stat.mean:.{d}f}"
    if stat.std > 0:  # several runs that differ
        text += f"{pm}{stat.std:.{d}f}"
    if metric == "runtime_ms" and row.runtime_caveat:
        text += UNSTEADY
    if metric in row.ranks:
        text += f" ({row.ranks[metric]})"
    return text


def _total(lb: Leaderboard, row: Row, missing: str) -> str:
    if row.total is None:
        return missing
    if lb.track.method != "score":
        return f"{row.total:g}"
    return f"{row.total:.4f}" if abs(row.total) < 1e6 else f"{row.total:.4e}"   # exp() of runtimes far off the base


def _rank(row: Row) -> str:
    return str(row.rank) if row.status == RANKED else ("ref" if row.status == REFERENCE else "–")


def _note(row: Row) -> str:
    parts = [f"not ranked: {row.reason}"] if row.status in (NOT_RANKED, RANDOM) else []
    return "; ".join(parts + row.notes)


def _grid(lb: Leaderboard, text: Callable[[str], str] = str) -> tuple[list[str], list[list[list[str]]]]:
    """Headings and the rows in groups (ranked, reference, not ranked), every cell and heading passed through
    ``text`` (the format's escaping)."""
    pm, missing = "±", "–"
    with_device = len({r.device_label for r in lb.rows if r.device_label}) > 1
    with_note = any(_note(r) for r in lb.rows)
    headings = ["#", "Entry", *(["Device"] if with_device else []), "Weights", *(lb.heading(m) for m in lb.columns),
                *([lb.total_heading] if lb.total_heading else []), *(["Note"] if with_note else [])]
    groups: list[list[list[str]]] = []
    for status in STATUSES:
        group = []
        for row in (r for r in lb.rows if r.status == status):
            cells = [_rank(row), row.label, *([row.device_label or missing] if with_device else []),
                     row.weights or missing, *(_value(lb, row, m, pm, missing) for m in lb.columns),
                     *([_total(lb, row, missing)] if lb.total_heading else []), *([_note(row)] if with_note else [])]
            group.append([text(c) for c in cells])
        if group:
            groups.append(group)
    return [text(h) for h in headings], groups


def _title(lb: Leaderboard) -> str:
    title = f" ({lb.track.title})" if lb.track.title else ""
    return f"{lb.protocol.title}, track {lb.track.name}{title}: {lb.track.describe()}"


def _align(headings: list[str]) -> tuple[str, ...]:
    return tuple("left" if h in ("Entry", "Device", "Weights", "Note") else "right" for h in headings)


def to_table(lb: Leaderboard) -> str:
    headings, groups = _grid(lb, text=one_line)
    body: list[Any] = []
    for group in groups:
        body += ([SEPARATING_LINE] if body else []) + group
    table = tabulate(body, headers=headings, tablefmt="simple", colalign=_align(headings), disable_numparse=True)
    notes = "\n".join(f"- {one_line(n, 2000)}" for n in lb.notes)
    return f"{_title(lb)}\n\n{table}\n\n{notes}\n"


#: characters of Markdown (and the HTML it allows) that make emphasis, code, links, images, tags or cell breaks:
#: escaped with a backslash, ``<``/``>``/``&`` as entities (an intraword ``_``, as in entry names, makes nothing)
_MARKDOWN = str.maketrans({**{c: "\\" + c for c in "\\`*[]|~"}, "<": "&lt;", ">": "&gt;", "&": "&amp;"})


def markdown_escape(text: str) -> str:
    """``text`` as Markdown shows it literally: terminal sequences and control characters out
    (:func:`ntirekit.core.text.one_line`), no emphasis, link, image, HTML tag or table cell break it could make."""
    return one_line(text, 2000).translate(_MARKDOWN)


def to_markdown(lb: Leaderboard) -> str:
    headings = _grid(lb)[0]                      # the kit's own words, as they read
    rows = [cells for group in _grid(lb, text=markdown_escape)[1] for cells in group]
    table = tabulate(rows, headers=headings, tablefmt="github", colalign=_align(headings), disable_numparse=True)
    notes = "\n".join(f"- {markdown_escape(n)}" for n in lb.notes)
    return f"### {_title(lb)}\n\n{table}\n\n{notes}\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                  "–": "--", "—": "---", "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$", "·": r"$\cdot$",
                  "±": r"$\pm$", "★": r"$\star$", "²": r"\textsuperscript{2}"}
#: a command-line option (``--allow-random``, ``--baseline``) in running text
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _escape_chars(text: str) -> str:
    """Each special character replaced; a ``-`` becomes ``-{}`` only before another ``-`` (no ``--`` ligature)."""
    out = []
    for i, ch in enumerate(text):
        if ch == "-":
            out.append("-{}" if text[i + 1:i + 2] == "-" else "-")
        else:
            out.append(_LATEX_ESCAPES.get(ch, ch))
    return "".join(out)


def latex_escape(text: str) -> str:
    r"""``text`` as LaTeX text mode typesets it literally: ``_ % & # $ { } ~ ^ \ < > |`` escaped, ``–`` an en dash
    (``--``), ``×≥≤·±`` in math, and a command-line option such as ``--allow-random`` as
    ``\texttt{-{}-allow-random}``."""
    out, end = [], 0
    for match in _OPTION.finditer(text):
        out += [_escape_chars(text[end:match.start()]), r"\texttt{" + _escape_chars(match.group()) + "}"]
        end = match.end()
    out.append(_escape_chars(text[end:]))
    return "".join(out)


def to_latex(lb: Leaderboard) -> str:
    headings, groups = _grid(lb, text=latex_escape)
    spec = "".join("l" if a == "left" else "r" for a in _align(headings))
    lines = [f"% {_title(lb)}", "% made by ntirekit leaderboard; needs \\usepackage{booktabs}",
             *(f"% {' '.join(n.split())}" for n in lb.notes),
             f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(headings) + r" \\"]
    for group in groups:
        lines.append("\\midrule")
        lines += [" & ".join(cells) + r" \\" for cells in group]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _csv_number(value: float, metric: str) -> Any:
    return int(value) if METRICS[metric].decimals == 0 and value.is_integer() else repr(value)


def to_csv(lb: Leaderboard) -> str:
    """One line per row, unrounded values; ``<metric>_rank`` beside each ranked metric, ``_std``/``_n`` where runs
    were combined; ratios to the baseline are named ``<metric>_ratio``."""
    spread = [m for m in lb.columns if any(r.values.get(m) and r.values[m].n > 1 for r in lb.rows)]
    header = ["rank", "entry", "status", "device", "weights"]
    for m in lb.columns:
        name = f"{m}_ratio" if m in lb.normalised else m
        header += [name] + ([f"{m}_rank"] if m in lb.track.metrics else []) + \
            ([f"{m}_std", f"{m}_n"] if m in spread else [])
    total = "score" if lb.track.method == "score" else "rank_sum"
    header += [total, "runtime_caveat", "note"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in lb.rows:
        line: list[Any] = [row.rank if row.rank is not None else "", row.label, row.status, row.device_label,
                           row.weights or ""]
        for m in lb.columns:
            stat = row.values.get(m)
            line.append("" if stat is None else _csv_number(stat.mean, m))
            if m in lb.track.metrics:
                line.append(row.ranks.get(m, ""))
            if m in spread:
                line += ["", ""] if stat is None else [repr(stat.std), stat.n]
        line += ["" if row.total is None else (repr(row.total) if total == "score" else int(row.total)),
                 row.runtime_caveat, "; ".join(([row.reason] if row.reason else []) + row.notes)]
        writer.writerow(line)
    return out.getvalue()


def to_json(lb: Leaderboard) -> str:
    return json.dumps(lb.to_dict(), indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[Leaderboard], str]] = {
    "table": to_table, "md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex,
}


def render(lb: Leaderboard, fmt: str = "table") -> str:
    """The leaderboard in one of :data:`FORMATS` (``markdown`` is accepted for ``md``)."""
    fmt = {"markdown": "md", "tex": "latex"}.get(fmt, fmt)
    if fmt not in RENDERERS:
        raise OptionError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    return RENDERERS[fmt](lb)


def render_records(records: Iterable[Mapping[str, Any]], protocol: str = "ntire2022", track: str | None = None,
                   fmt: str = "table", **options: Any) -> str:
    """Rank ``records`` and render them: what ``ntirekit eval`` prints at its end.

    ``track=None`` takes the protocol's default track; ``options`` are those of
    :func:`ntirekit.rank.leaderboard.build_leaderboard` (``baseline``, ``baseline_entry``, ``gate``, ...).
    """
    return render(build_leaderboard(records, protocol, track, **options), fmt)
