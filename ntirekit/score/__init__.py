"""Scoring uploaded results against ground truth, as a challenge's validation server does, and the Codabench
scoring program and competition bundle that do it on Codabench.

- :func:`score_results` (``ntirekit score``): an ``esr-results`` or ``vqe-results`` zip or folder against the data
  ``eval`` reads or a reference folder; every problem of the upload one line, never a traceback;
- :mod:`ntirekit.score.png` (bounded PNG reading), :mod:`ntirekit.score.layout` (which file answers which reference
  item), :mod:`ntirekit.score.reference` and :mod:`ntirekit.score.scoring`: the code the scoring program is made of
  (numpy and Pillow only);
- :mod:`ntirekit.score.codabench`: ``ntirekit codabench scoring-program`` and ``ntirekit codabench bundle``.
"""

from ntirekit.score.api import ScoreOutcome, score_results
from ntirekit.score.reference import ReferenceDataError
from ntirekit.score.scoring import ScoringSettings, Scores

__all__ = ["ReferenceDataError", "ScoreOutcome", "Scores", "ScoringSettings", "score_results"]
