"""Which repository files a team's model needs: its file and, transitively, every repository module it imports.

Imports are read with :mod:`ast` (never executed): ``import a.b``, ``from a.b import c`` (``c`` may be a submodule),
and package-relative ``from .x import y``. A dotted name resolves against the repository root, the way the official
harness (run from the root) sees it; names that do not resolve there are third-party and left alone. Every package
``__init__.py`` on the way is included (Python runs it on import). A model file inside a team's package folder
(``models/team02_nlffc/NLFFC.py``) brings the whole folder, as 2022's rules let teams ship one.

:func:`missing_packages` names the third-party packages those files import that this environment lacks (found with
:func:`importlib.util.find_spec`, nothing imported or installed): standard-library modules, modules of the
repository or beside the importing file, imports inside a ``try:`` (optional ones) and imports below ``if __name__ ==
"__main__":`` (never run on import) do not count.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Iterable

from ntirekit.core.team_code import PIP_NAMES


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


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either side of the ``==``)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return False
    sides = [node.test.left, *node.test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and \
        any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)


def _imports_not_needed(tree: ast.Module) -> set[int]:
    """``id`` of every import statement inside a ``try:`` body (an optional dependency) or below a module-level
    ``if __name__ == "__main__":`` (a team's own profiling script: never run when the model is imported)."""
    blocks = [stmt for t in ast.walk(tree) if isinstance(t, ast.Try) for stmt in t.body]
    blocks += [stmt for t in tree.body if _is_main_guard(t) for stmt in t.body]
    return {id(n) for stmt in blocks for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}


def third_party_imports(repo: Path, rel: str) -> set[str]:
    """Top-level names of the absolute imports of ``rel`` (outside ``try:`` and the ``__main__`` block) that are
    neither the standard library nor a module of the repository or of the importing file's folder."""
    try:
        tree = ast.parse((repo / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return set()
    optional = _imports_not_needed(tree)
    beside = (repo / rel).parent
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"
            and not any((where / f"{n}.py").is_file() or (where / n).is_dir() for where in (repo, beside))}


def missing_packages(repo_dir: str | Path, files: Iterable[str]) -> list[str]:
    """The PyPI names (sorted) of the third-party packages ``files`` import that cannot be found here."""
    repo = Path(repo_dir).resolve()
    modules = {name for rel in set(files) for name in third_party_imports(repo, rel)}
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    return sorted({PIP_NAMES.get(m, m.replace("_", "-")) for m in missing})
