"""Leaderboards: the NTIRE ranking protocols (as TOML data), gates, ties, runs and devices, and their renderings.

    >>> from ntirekit.rank import build_leaderboard, published_table, render
    >>> lb = build_leaderboard(published_table("ntire2022"), "ntire2022", "overall")
    >>> print(render(lb, "md"))

- :mod:`ntirekit.rank.metrics`: the metrics, their units and how each is read from a result record;
- :mod:`ntirekit.rank.protocol`: protocols (``protocols/*.toml``, or a user's TOML file);
- :mod:`ntirekit.rank.inputs`: result JSON files and folders, published CSV tables (``published/*.csv``);
- :mod:`ntirekit.rank.ranking`: competition ranks, the score formula, the Pareto front;
- :mod:`ntirekit.rank.timing`: when a record's runtime can rank (quick runs, the spread bound);
- :mod:`ntirekit.rank.leaderboard`: runs merged, devices checked, gates, ranks;
- :mod:`ntirekit.rank.render`: table, Markdown, CSV, JSON, LaTeX; :func:`render_records` for ``eval``;
- :mod:`ntirekit.rank.plot`: the Pareto PNG (matplotlib, imported on use).
"""

from ntirekit.rank.inputs import InputError, load_results, published_table, read_published_csv
from ntirekit.rank.leaderboard import Leaderboard, LeaderboardError, build_leaderboard
from ntirekit.rank.protocol import Protocol, ProtocolError, available_protocols, load_protocol
from ntirekit.rank.ranking import competition_ranks, pareto_front, score
from ntirekit.rank.render import FORMATS, render, render_records

__all__ = [
    "FORMATS", "InputError", "Leaderboard", "LeaderboardError", "Protocol", "ProtocolError", "available_protocols",
    "build_leaderboard", "competition_ranks", "load_protocol", "load_results", "pareto_front", "published_table",
    "read_published_csv", "render", "render_records", "score",
]
