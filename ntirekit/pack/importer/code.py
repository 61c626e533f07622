"""Which repository files a team's model needs: its file and, transitively, every repository module it imports.

Imports are read with :mod:`ast` (never executed): ``import a.b``, ``from a.b import c`` (``c`` may be a submodule),
and package-relative ``from .x import y``. A dotted name resolves against the repository root, the way the official
harness (run from the root) sees it; names that do not resolve there are third-party and left alone. Every package
``__init__.py`` on the way is included (Python runs it on import). A model file inside a team's package folder
(``models/team02_nlffc/NLFFC.py``) brings the whole folder, as 2022's rules let teams ship one.
"""

from __future__ import annotations

import ast
from pathlib import Path


def _module_files(repo: Path, parts: list[str]) -> list[str]:
    """The files a dotted module name runs on import: each package ``__init__.py`` and the module itself."""
    files: list[str] = []
    for i in range(1, len(parts) + 1):
        base = Path(*parts[:i])
        init = base / "__init__.py"
        if (repo / init).is_file():
            files.append(init.as_posix())
        elif i == len(parts) and (repo / base.with_suffix(".py")).is_file():
            files.append(base.with_suffix(".py").as_posix())
        elif not (repo / base).is_dir():
            return []
    return files


def imported_files(repo: Path, rel: str) -> list[str]:
    """The repository files ``rel``'s import statements name directly."""
    try:
        tree = ast.parse((repo / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return []
    package = list(Path(rel).parent.parts) if Path(rel).name != "__init__.py" else list(Path(rel).parent.parts)
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[list[str]] = []
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue
                base = package[:len(package) - (node.level - 1)]
            else:
                base = []
            module = base + (node.module.split(".") if node.module else [])
            modules = [module] + [module + [alias.name] for alias in node.names if alias.name != "*"]
        for parts in modules:
            if parts:
                found += _module_files(repo, parts)
    return found


def code_files(repo_dir: str | Path, model_rel: str) -> tuple[str, ...]:
    """``model_rel`` and everything it imports from the repository, transitively (repository-relative paths, sorted);
    for a model inside a package folder below ``models/``, also every ``.py`` file of that folder."""
    repo = Path(repo_dir).resolve()
    parent = (repo / model_rel).parent
    todo = [model_rel]
    if parent not in (repo, repo / "models"):
        todo += sorted(p.relative_to(repo).as_posix() for p in parent.rglob("*.py") if "__pycache__" not in p.parts)
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        todo += [f for f in imported_files(repo, rel) if f not in seen]
    return tuple(sorted(seen))
