"""Pareto plot of a leaderboard: PSNR against runtime, marker area by params, the front drawn and labelled.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path

from ntirekit.rank.leaderboard import NOT_RANKED, REFERENCE, Leaderboard, LeaderboardError
from ntirekit.rank.metrics import METRICS
from ntirekit.rank.ranking import pareto_front

_STYLE = {  # status -> (face colour, edge colour, legend)
    "ranked": ("#4c72b0", "#1f3d6b", "ranked"),
    REFERENCE: ("none", "#555555", "reference (not ranked)"),
    NOT_RANKED: ("#cccccc", "#999999", "not ranked"),
}


def pareto_plot(lb: Leaderboard, path: str | os.PathLike, psnr: str | None = None) -> list[str]:
    """Write the plot to ``path`` (PNG); returns the labels of the rows on the front, fastest first.

    ``psnr``: ``psnr_val`` or ``psnr_test`` (default: ``psnr_val`` where any row has it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    psnr = psnr or ("psnr_val" if any("psnr_val" in r.values for r in lb.rows) else "psnr_test")
    rows = [r for r in lb.rows if psnr in r.values and "runtime_ms" in r.values]
    if not rows:
        raise LeaderboardError(f"nothing to plot: no row has both {psnr} and runtime_ms")
    xs = [r.values["runtime_ms"].mean for r in rows]
    ys = [r.values[psnr].mean for r in rows]
    params = [r.values["params_m"].mean if "params_m" in r.values else None for r in rows]
    largest = max((p for p in params if p), default=1.0)
    sizes = [60.0 if p is None else 40.0 + 1400.0 * p / largest for p in params]
    front = pareto_front(list(zip(xs, ys)))

    fig = Figure(figsize=(8, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for status, (face, edge, legend) in _STYLE.items():
        idx = [i for i, r in enumerate(rows) if r.status == status]
        if idx:
            ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], s=[sizes[i] for i in idx], c=face,
                       edgecolors=edge, linewidths=1.5, alpha=0.75, label=legend, zorder=3)
    fx, fy = [xs[i] for i in front], [ys[i] for i in front]
    ax.step(fx, fy, where="post", color="#c44e52", linewidth=1.8, zorder=2, label="Pareto front")
    ax.scatter(fx, fy, s=18, c="#c44e52", zorder=4)
    for i, row in enumerate(rows):
        on_front = i in front
        offset = sizes[i] ** 0.5 / 2 + 3  # marker radius in points, plus a gap
        ax.annotate(row.label + (" ★" if on_front else ""), (xs[i], ys[i]), xytext=(offset * 0.8, offset * 0.8),
                    textcoords="offset points", fontsize=9, fontweight="bold" if on_front else "normal",
                    color="#8c1c1f" if on_front else "#333333", zorder=5)

    for gate in (g for g in (lb.gate.gates if lb.gate else ()) if g.metric == psnr and g.min is not None):
        ax.axhline(gate.min, linestyle="--", linewidth=1, color="#777777", zorder=1)
        ax.annotate(f"gate {gate.describe()}", (0.01, gate.min), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, color="#555555")

    runtime = lb.heading("runtime_ms") if "runtime_ms" in lb.normalised else METRICS["runtime_ms"].heading
    ax.set_xlabel(f"{runtime} (lower is better)")
    ax.set_ylabel(f"{METRICS[psnr].heading} (higher is better)")
    ax.set_title(f"{lb.protocol.title}: {METRICS[psnr].label} against runtime\n"
                 f"marker area ∝ params (largest {largest:.3f} M); ★ on the Pareto front", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.18, y=0.25)
    ax.legend(loc="lower right", fontsize=8, markerscale=0.5, frameon=True)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return [rows[i].label for i in front]
