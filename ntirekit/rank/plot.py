"""Pareto plot of a leaderboard: PSNR against runtime, marker area by params, the front drawn and labelled.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display needed). What the figure shows:

- ranked rows filled; reference rows hollow; rows not ranked (gated out, refused, random weights, a runtime that
  cannot rank) grey and hollow; a runtime that cannot rank (:mod:`ntirekit.rank.timing`) has ``*`` after its label;
- the Pareto front through the **ranked** rows only: a row that is not ranked is never on it; a "front" of one row
  is no front, and is neither drawn nor starred;
- under the legend, what the figures were measured on: the PSNR's dataset (split, protocol), the timing inputs,
  the timer and the device; and, in red, the caveat when runtimes cannot rank;
- the PSNR axis spans the ranked and reference rows (all rows when none is ranked); a row far below (random weights
  at 7 dB) is drawn as a grey triangle on the lower edge with its value in its label, so it does not stretch the axis;
- the runtime axis starts at 0, or is logarithmic when the runtimes span more than :data:`LOG_SPAN` times;
- labels placed without overlap by a deterministic search: each label, in order of runtime, takes the first of a
  fixed ring of offsets around its marker whose box overlaps no label placed before, no marker, stays inside the
  axes and lies nearer its own marker than any other (so that a label is never read as its neighbour's); a thin
  leader line joins a label set far from its marker; the least-bad candidate when none is free.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

from ntirekit.rank.leaderboard import (NOT_RANKED, RANDOM, RANKED, REFERENCE, Leaderboard, LeaderboardError, Row,
                                      unsteady_caveat)
from ntirekit.rank.metrics import METRICS
from ntirekit.rank.ranking import pareto_front

_STYLE = {  # status -> (face colour, edge colour, legend)
    RANKED: ("#4c72b0", "#1f3d6b", "ranked"),
    REFERENCE: ("none", "#333333", "reference (not ranked)"),
    NOT_RANKED: ("none", "#9a9a9a", "not ranked (gate, refused value, runtime that cannot rank)"),
    RANDOM: ("none", "#b0b0b0", "random weights (not ranked)"),
}
FRONT_COLOUR = "#c44e52"
CAVEAT_COLOUR = "#b22222"
#: rows not ranked within this many dB below the ranked ones widen the PSNR axis; lower ones sit on its edge
NEAR_DB = 1.0
_BELOW_SIZE = 60.0
#: runtimes spanning more than this ratio (max / min) get a logarithmic axis
LOG_SPAN = 20.0
#: label offsets tried around a marker, in units of (marker radius + gap), in order
_OFFSETS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1.2, 0), (-1.2, 0), (0, 1.4), (0, -1.4),
            (2, 2), (2, -2), (-2, 2), (-2, -2), (3, 0), (-3, 0), (0, 3), (0, -3), (3, 3), (3, -3), (-3, 3), (-3, -3)]


def _y_limits(rows: list[Row], ys: list[float]) -> tuple[float, float]:
    """PSNR range from the ranked and reference rows (all rows when none is), widened to take in the rows not ranked
    that lie within :data:`NEAR_DB` below it (a gated-out entry), padded by a fifth of its span."""
    core = [y for r, y in zip(rows, ys) if r.status in (RANKED, REFERENCE)] or ys
    low, high = min(core), max(core)
    low = min([y for y in ys if low - NEAR_DB <= y] + [low])
    pad = max(0.2 * (high - low), 0.05)
    return low - pad, high + pad


def _place_labels(ax: Any, renderer: Any, points: list[tuple[float, float]], radii: list[float],
                  labels: list[tuple[str, dict[str, Any]]]) -> None:
    """Annotate each point with its label at the first free offset (see the module docstring)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    axes_box = ax.get_window_extent(renderer)
    scale = ax.figure.dpi / 72.0                        # points -> pixels
    centres = [ax.transData.transform(p) for p in points]
    taken = [Bbox.from_bounds(cx - r * scale, cy - r * scale, 2 * r * scale, 2 * r * scale)
             for (cx, cy), r in zip(centres, radii)]

    def detached(box: Any, i: int) -> bool:
        """Whether the label box lies nearer another marker's edge than its own marker's."""
        own = marker_gap(box, centres[i], radii[i] * scale)
        return any(marker_gap(box, c, r * scale) < own for j, (c, r) in enumerate(zip(centres, radii)) if j != i)
    taken += [t.get_window_extent(renderer) for t in ax.texts]       # gate labels drawn before

    def overlap(box: Any) -> float:
        area = 0.0
        for other in taken:
            w = min(box.x1, other.x1) - max(box.x0, other.x0)
            h = min(box.y1, other.y1) - max(box.y0, other.y0)
            area += max(w, 0.0) * max(h, 0.0)
        outside = box.width * box.height - max(min(box.x1, axes_box.x1) - max(box.x0, axes_box.x0), 0.0) * \
            max(min(box.y1, axes_box.y1) - max(box.y0, axes_box.y0), 0.0)
        return area + 10.0 * outside

    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    for i in order:
        text, style = labels[i]
        step = radii[i] + 4.0
        best: tuple[float, Any, Any] | None = None
        for dx, dy in _OFFSETS:
            leader = {"arrowprops": {"arrowstyle": "-", "color": "#999999", "linewidth": 0.6, "shrinkA": 0,
                                     "shrinkB": radii[i]}} if max(abs(dx), abs(dy)) >= 2 else {}
            ann = ax.annotate(text, points[i], xytext=(dx * step, dy * step), textcoords="offset points",
                              ha="left" if dx > 0 else ("right" if dx < 0 else "center"),
                              va="bottom" if dy > 0 else ("top" if dy < 0 else "center"), zorder=5, annotation_clip=False,
                              **leader, **style)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)          # the text alone, not its leader line
            cost = overlap(box) + (1e9 if detached(box, i) else 0.0)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0.0:
                break
        assert best is not None
        taken.append(best[2])


def marker_gap(box: Any, centre: Any, radius: float) -> float:
    """Distance in pixels from a label's box to the edge of a round marker (negative: the box reaches into it)."""
    dx = max(box.x0 - centre[0], 0.0, centre[0] - box.x1)
    dy = max(box.y0 - centre[1], 0.0, centre[1] - box.y1)
    return math.hypot(dx, dy) - radius


def conditions_lines(lb: Leaderboard) -> list[str]:
    """What the plotted figures were measured on (dataset, timing inputs, timer, device), one line each."""
    said = lb.conditions
    devices = "; ".join(said.get("device", [])) or "device not said"
    psnr = "; ".join(said.get("psnr", [])) or "as published"
    runtime = "; ".join(said.get("runtime", [])) or "as published"
    timer = "; ".join(said.get("timer", []))
    return [f"PSNR: {psnr}", f"runtime: {runtime}" + (f"; {timer}" if timer else "") + f"; on {devices}"]


def caveat_line(lb: Leaderboard, rows: list[Row]) -> str:
    """The red line for plotted rows whose runtime cannot rank ("" when every plotted runtime can)."""
    caveat = unsteady_caveat(rows, "runtime_ms" in lb.track.metrics, lb.allow_unsteady)
    if caveat is None:
        return ""
    n, why, how = caveat
    said = {"shown": "shown, not comparable",
            "ranked": "ranked anyway (--allow-unsteady): a ranking these timings cannot support",
            "not ranked": "drawn as not ranked, no front through them"}[how]
    return f"* CAVEAT: the runtimes of {n} row(s) cannot rank ({why}): {said}"


def pareto_plot(lb: Leaderboard, path: str | os.PathLike, psnr: str | None = None) -> list[str]:
    """Write the plot to ``path`` (PNG); returns the labels of the ranked rows on the front, fastest first (empty
    when fewer than two ranked rows make it: one row is no front).

    ``psnr``: ``psnr_val`` or ``psnr_test`` (default: ``psnr_val`` where any row has it)."""
    fig, front = pareto_figure(lb, psnr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return front


def pareto_figure(lb: Leaderboard, psnr: str | None = None) -> tuple[Any, list[str]]:
    """The plot as a matplotlib ``Figure`` (one axes, labels placed) and the labels of the rows on the front."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    psnr = psnr or ("psnr_val" if any("psnr_val" in r.values for r in lb.rows) else "psnr_test")
    rows = [r for r in lb.rows if psnr in r.values and "runtime_ms" in r.values]
    if not rows:
        raise LeaderboardError(f"nothing to plot: no row has both {psnr} and runtime_ms (a PSNR counts as val or test "
                               "when its record's split or its dataset's folder name says so: see leaderboard --help)")
    xs = [r.values["runtime_ms"].mean for r in rows]
    ys = [r.values[psnr].mean for r in rows]
    params = [r.values["params_m"].mean if "params_m" in r.values else None for r in rows]
    largest = max((p for p in params if p), default=1.0)
    sizes = [60.0 if p is None else 30.0 + 800.0 * p / largest for p in params]
    ranked = [i for i, r in enumerate(rows) if r.status == RANKED]
    front = [ranked[k] for k in pareto_front([(xs[i], ys[i]) for i in ranked])]
    front = front if len(front) > 1 else []

    y_low, y_high = _y_limits(rows, ys)
    below = {i for i, y in enumerate(ys) if y < y_low}
    shown_y = [y_low if i in below else y for i, y in enumerate(ys)]
    radii = [(_BELOW_SIZE if i in below else s) ** 0.5 / 2 for i, s in enumerate(sizes)]   # in points

    fig = Figure(figsize=(8, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    log_x = max(xs) / min(xs) > LOG_SPAN
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    else:
        ax.set_xlim(0.0, max(xs) * 1.15)
    ax.set_ylim(y_low, y_high)

    for status, (face, edge, legend) in _STYLE.items():
        idx = [i for i, r in enumerate(rows) if r.status == status and i not in below]
        if idx:
            ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], s=[sizes[i] for i in idx], c=face,
                       edgecolors=edge, linewidths=1.5, alpha=0.8, label=legend, zorder=3)
    if below:
        idx = sorted(below)
        ax.scatter([xs[i] for i in idx], [y_low] * len(idx), s=_BELOW_SIZE, marker="v", c="#b0b0b0", edgecolors="#808080",
                   clip_on=False, zorder=3, label="below the axis (value in its label)")
    if front:
        fx, fy = [xs[i] for i in front], [ys[i] for i in front]
        ax.step(fx, fy, where="post", color=FRONT_COLOUR, linewidth=1.8, zorder=2, label="Pareto front (ranked rows)")
        ax.scatter(fx, fy, s=18, c=FRONT_COLOUR, zorder=4)

    for gate in (g for g in (lb.gate.gates if lb.gate else ()) if g.metric == psnr and g.min is not None):
        if y_low <= gate.min <= y_high:
            ax.axhline(gate.min, linestyle="--", linewidth=1, color="#777777", zorder=1)
            ax.annotate(f"gate {gate.describe()}", (0.99, gate.min), xycoords=("axes fraction", "data"),
                        xytext=(0, 3), textcoords="offset points", fontsize=8, color="#555555", ha="right")

    runtime = lb.heading("runtime_ms") if "runtime_ms" in lb.normalised else METRICS["runtime_ms"].heading
    ax.set_xlabel(f"{runtime} (lower is better){', log scale' if log_x else ''}")
    ax.set_ylabel(f"{METRICS[psnr].heading} (higher is better)")
    ax.set_title(f"{lb.protocol.title}: {METRICS[psnr].label} against runtime\n"
                 f"marker area ∝ params (largest {largest:.3f} M); " +
                 ("★ on the Pareto front of the ranked rows" if front else "no Pareto front: fewer than two ranked rows"),
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, markerscale=0.5, frameon=False)
    footer = [line for text in conditions_lines(lb) for line in textwrap.wrap(text, 160)]
    caveat = textwrap.wrap(caveat_line(lb, rows), 125)
    fig.text(0.01, 0.01, "\n".join(footer), fontsize=7, color="#444444", ha="left", va="bottom")
    if caveat:
        fig.text(0.01, 0.01 + 0.022 * len(footer), "\n".join(caveat), fontsize=7.5, color=CAVEAT_COLOUR,
                 ha="left", va="bottom", fontweight="bold")
    fig.tight_layout(rect=(0.0, 0.022 * (len(footer) + len(caveat)) + 0.01, 1.0, 1.0))

    labels: list[tuple[str, dict[str, Any]]] = []
    for i, row in enumerate(rows):
        text = row.label + ("*" if row.runtime_caveat else "") + (" ★" if i in front else "")
        if i in below:
            text += f" ({ys[i]:.2f} dB)"
        colour = "#8c1c1f" if i in front else ("#333333" if row.status in (RANKED, REFERENCE) else "#888888")
        labels.append((text, {"fontsize": 8, "fontweight": "bold" if i in front else "normal", "color": colour}))
    renderer = fig.canvas.get_renderer()
    _place_labels(ax, renderer, list(zip(xs, shown_y)), radii, labels)
    return fig, [rows[i].label for i in front]
