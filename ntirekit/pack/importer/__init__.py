"""Importing official NTIRE ESR repositories as they were shipped.

- :mod:`ntirekit.pack.importer.demo`: the team map read from ``test_demo.py``'s ``select_model`` with :mod:`ast`;
- :mod:`ntirekit.pack.importer.code`: the repository files a model file imports, transitively;
- :mod:`ntirekit.core.team_code`: running entry code as shipped (relative imports, per-folder module namespaces,
  one-line missing-dependency and needs-CUDA errors);
- :mod:`ntirekit.pack.importer.report`: the import report.

The entry folders themselves are written by :mod:`ntirekit.pack.legacy` (``ntirekit import-ntire``).
"""
