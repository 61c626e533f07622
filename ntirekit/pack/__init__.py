"""Submissions: formats, packer, checker, safe zip handling, manifest.

- :func:`pack` validates a folder (ESR code, ESR results, VQE results) and writes a zip with ``MANIFEST.json``;
- :func:`check_zip` gives a verdict (ACCEPTED/REJECTED) and every problem of a zip, extracting only into a temporary
  folder and running no submitted code (unless asked, and then in an isolated child process);
- :func:`unpack` checks a zip and leaves it extracted (and marked untrusted) for ``eval``.

See :mod:`ntirekit.pack.formats` for the formats and the naming conventions.
"""

from ntirekit.pack.checker import check_zip, unpack
from ntirekit.pack.formats import FORMATS, detect_format, parse_readme, render_readme, sr_name, validate
from ntirekit.pack.packer import PackResult, pack
from ntirekit.pack.report import ACCEPTED, REJECTED, Problem, Report
from ntirekit.pack.safezip import Limits, safe_extract

__all__ = ["ACCEPTED", "FORMATS", "Limits", "PackResult", "Problem", "REJECTED", "Report", "check_zip",
           "detect_format", "pack", "parse_readme", "render_readme", "safe_extract", "sr_name", "unpack",
           "validate"]
