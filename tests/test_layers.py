"""The package's layering, read from the source with ``ast`` (nothing is imported).

Layers, lowest first (docs/architecture.md): core < jail < quality < data < nn < models < graph < measure < eval <
train < pack < rank < score < jobs < cli. A module may import its own layer and the layers below, never one above; the module import graph has no
circles; imports of the kit's own modules sit at module top. Imports under ``if TYPE_CHECKING:`` are for type hints
only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ntirekit"

#: lowest first; a module's layer is the longest prefix listed (the root package counts as core)
LAYERS = ("core", "jail", "quality", "data", "nn", "models", "graph", "measure", "eval", "train", "pack", "rank", "score",
          "jobs", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS.index("core")
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer: add ntirekit.{parts[1]} to LAYERS and docs/architecture.md")
    return LAYERS.index(parts[1])


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def kit_imports(source: str, this: str, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """``(imported ntirekit module, line, at module top)`` for every import in the source of module ``this``."""
    tree = ast.parse(source)
    package = this if is_package else this.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names if a.name.split(".")[0] == "ntirekit")
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] != "ntirekit":
                    continue
                for alias in child.names:   # ``from pkg import submodule`` imports the submodule
                    sub = f"{base}.{alias.name}"
                    found.append((sub if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file()
                                  or (PACKAGE.parent / Path(*sub.split("."))).is_dir() else base, child.lineno, top))
            visit(child, inner)

    visit(tree, True)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(f): kit_imports(f.read_text(encoding="utf-8"), module_name(f), f.name == "__init__.py")
         for f in FILES}


def test_every_module_has_a_layer() -> None:
    for module in GRAPH:
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"{m}:{line} imports {target} ({LAYERS[layer_of(m)]} < {LAYERS[layer_of(target)]})"
              for m, imports in GRAPH.items() for target, line, _ in imports if layer_of(target) > layer_of(m)]
    assert upward == []


def test_kit_imports_sit_at_module_top() -> None:
    inside = [f"{m}:{line} imports {target} inside a function" for m, imports in GRAPH.items()
              for target, line, top in imports if not top]
    assert inside == []


def _resolve(target: str) -> str:
    """The module an import names (``from ntirekit.pack import x`` where x is a name: the package)."""
    while target not in GRAPH and "." in target:
        target = target.rpartition(".")[0]
    return target


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (as the list of modules around it), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_import_circles() -> None:
    edges = {m: {_resolve(t) for t, _, _ in imports} - {m} for m, imports in GRAPH.items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_finder_finds_circles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("source, expected", [
    ("from ntirekit.cli.common import x\n", [("ntirekit.cli.common", 1, True)]),
    ("def f():\n    from ntirekit.core import spec\n", [("ntirekit.core.spec", 2, False)]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ntirekit.cli import common\n", []),
])
def test_the_import_reader(source: str, expected: list) -> None:
    assert kit_imports(source, "ntirekit.core.probe") == expected


def test_a_relative_import_resolves() -> None:
    assert kit_imports("from .spec import Entry\n", "ntirekit.core.probe") == [("ntirekit.core.spec", 1, True)]
