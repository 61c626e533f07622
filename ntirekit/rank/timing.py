"""When a record's runtime can rank: the rule a leaderboard applies to every timed record, at ranking time.

A runtime **cannot rank** when either

- it comes from a **quick run**: the record says ``"quick": true``, or it was timed on part of the inputs or on crops
  of them (``options.extra.images`` or ``options.extra.crop``, what ``ntirekit eval``'s CPU quick run sets: the first
  2 inputs, centre crops of at most 128x128, 1 warm-up, 3 repeats). Such a figure says how fast an entry ran on a
  few small crops of this machine, not what the challenge measures; or
- its **spread** is above :data:`MAX_RUNTIME_SPREAD`: the spread is ``iqr / median`` of the record's ``runtime_ms``
  statistics (:func:`ntirekit.measure.runtime.summarize`: every timed call of the entry; for runs pooled with
  ``--runs``, the runs' headline figures, so then the run-to-run spread).

Why IQR over median, and not ``cv``: the robust timer's figure is a median, and the interquartile range is the spread
that matches it; neither moves with one slow call (a garbage collection, another process waking up) nor with the
official loop's first call, which carries the start-up cost by design (the ``ntire`` timer's ``cv`` on a GPU is
several times its mean for that reason alone). ``cv`` stays in the records and in ``eval``'s table.

Why 0.25: the spread also holds the differences between the inputs' sizes (``div2k-like``: 322x510 to 347x510 LR
pixels, within 8 % of each other; DIV2K's images differ more), and the NTIRE organisers' own logs show 15-20 %
between runs of one model, which they ranked. Above a quarter of the median between the quartiles, half the
timings spread over more than the gaps that separate most entries in a challenge table (the 2022 table's first nine
runtimes lie within 29 % of each other, 27.11 to 34.81 ms): the median of such a run does not order entries. The
tour's quick CPU run on a loaded 2-core machine gave spreads of 0.12 to 1.3 for nine of the ten ESR baselines (17
for ``ecbsr``, whose median is 10 ms), ``cv`` 0.51 to 1.5.

A record that carries no ``iqr`` or ``median`` (a hand-written one, a published row) is not checked for spread.
"""

from __future__ import annotations

from typing import Any, Mapping

from ntirekit.core.records import timing_cut
from ntirekit.rank.metrics import number

#: the largest ``iqr / median`` of a record's runtime_ms that ranks
MAX_RUNTIME_SPREAD = 0.25

#: what the leaderboard's caveat line says about the rule (one place, shown in notes and in the plot)
RULE = (f"a runtime ranks only when it was timed on every input at full size (not a quick run) and its spread "
        f"(IQR/median of the timings) is at most {MAX_RUNTIME_SPREAD:g}")


def runtime_spread(record: Mapping[str, Any]) -> float | None:
    """``iqr / median`` of the record's ``runtime_ms`` statistics; None where the record does not carry both."""
    runtime = record.get("runtime_ms")
    if not isinstance(runtime, Mapping):
        return None
    iqr, median = number(runtime.get("iqr")), number(runtime.get("median"))
    if iqr is None or median is None or median <= 0:
        return None
    return iqr / median


def quick_run(record: Mapping[str, Any]) -> str | None:
    """How the record's timing was cut short (``"quick run: first 2 inputs, 128x128 crops"``), or None when it was
    timed on every input at full size."""
    cut = timing_cut(record)
    parts = []
    if cut.images:
        parts.append(f"first {cut.images} input{'' if str(cut.images) == '1' else 's'}")
    if cut.crop:
        parts.append(f"{cut.crop}x{cut.crop} crops")
    if parts:
        return "quick run: " + ", ".join(parts)
    return "quick run" if cut.quick else None


def runtime_caveat(record: Mapping[str, Any]) -> str | None:
    """Why the record's runtime cannot rank (a short phrase for a table's note), or None when it can."""
    if not isinstance(record.get("runtime_ms"), Mapping):
        return None
    quick = quick_run(record)
    if quick:
        return quick
    spread = runtime_spread(record)
    if spread is not None and spread > MAX_RUNTIME_SPREAD:
        return f"spread {spread:.2f} > {MAX_RUNTIME_SPREAD:g}"
    return None
