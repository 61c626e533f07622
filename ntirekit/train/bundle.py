"""Self-contained model files: the kit's code an entry's ``model.py`` imports, written into the file itself.

A baseline's ``model.py`` may import its network from the kit (``from ntirekit.nn.blocks import RLFN``). A folder
derived from it (``ntirekit train``/``finetune``/``prune``/``reparam``) is meant to be submitted, and the NTIRE
harness runs submissions without ``ntirekit`` installed. :func:`self_contained_source` rewrites such a file so that it
imports nothing from the kit:

- every ``from ntirekit.<module> import name [as alias]`` (at the top or inside a function) is resolved to the
  definition of ``name`` in the kit's source, found with :mod:`ast` (no kit module is executed);
- the definitions it needs are collected by name: a top-level function, class or assignment, then every top-level
  name its code refers to (in its own module or imported from another kit module), recursively; imports of other
  packages (``torch``, ``numpy``, the standard library) that the collected code uses are kept;
- the collected definitions are written, dependencies first, between the file's docstring and its own code, each
  under a comment naming the kit module it came from; an ``alias`` becomes ``alias = name``.

What cannot be resolved this way is an error (:class:`BundleError`, one line): a kit import of a module itself
(``from ntirekit.nn import blocks``, ``import ntirekit.nn.blocks``), a name a kit module does not define at its top
level, or two different kit definitions of one name.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BundleError", "kit_imports", "self_contained_source", "make_self_contained"]

KIT = "ntirekit"
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class BundleError(ValueError):
    """Kit code an entry imports that cannot be written into its model file; the message says which and why."""


def _is_kit(module: str | None) -> bool:
    return bool(module) and (module == KIT or module.startswith(KIT + "."))  # type: ignore[union-attr]


def kit_imports(source: str, filename: str = "<model>") -> list[str]:
    """The kit modules a Python source imports (top level or nested), in order of appearance."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_kit(node.module):
            found.append(str(node.module))
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_kit(a.name)]
    return list(dict.fromkeys(found))


@dataclass
class _Module:
    name: str
    source: str = ""
    defs: dict[str, ast.stmt] = field(default_factory=dict)          # top-level name -> its statement
    imports: dict[str, tuple[str, str | None, ast.stmt]] = field(default_factory=dict)  # local -> (module, attr, stmt)


def _module_path(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise BundleError(f"{name}: no Python source to write into the model file")
    return Path(spec.origin)


def _absolute(module: str | None, level: int, package: str) -> str:
    if not level:
        return str(module)
    base = package.split(".")
    base = base[:len(base) - level + 1]
    return ".".join(base + ([module] if module else []))


def _parse_module(name: str, source: str | None = None, package: str | None = None) -> _Module:
    if source is None:
        path = _module_path(name)
        source = path.read_text(encoding="utf-8")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    mod = _Module(name, source)
    for stmt in ast.parse(source, name).body:
        if isinstance(stmt, _DEFS):
            mod.defs[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        mod.defs[node.id] = stmt
        elif isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
            where = _absolute(stmt.module, stmt.level, package or "")
            for alias in stmt.names:
                mod.imports[alias.asname or alias.name] = (where, alias.name, stmt)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                local = alias.asname or alias.name.split(".")[0]
                mod.imports[local] = (alias.name if alias.asname else local, None, stmt)
    return mod


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _nested_kit_imports(node: ast.AST) -> list[ast.ImportFrom]:
    return [n for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.level == 0 and _is_kit(n.module)]


class _Collector:
    """Definitions needed, in dependency order, and the other packages' imports they use."""

    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        self.order: list[tuple[str, str]] = []                  # (kit module, name), dependencies first
        self.done: set[tuple[str, str]] = set()
        self.owner: dict[str, str] = {}                         # emitted name -> kit module
        self.external: dict[str, str] = {}                      # local name -> import statement source
        self.aliases: list[str] = []                            # "alias = name" of kit imports under another name

    def module(self, name: str) -> _Module:
        if name not in self.modules:
            self.modules[name] = _parse_module(name)
        return self.modules[name]

    def need(self, module: str, name: str, wanted_by: str) -> None:
        """Collect ``module.name`` and everything it refers to."""
        key = (module, name)
        if key in self.done:
            return
        mod = self.module(module)
        if name in mod.imports and name not in mod.defs:          # re-exported: follow it
            target, attr, _ = mod.imports[name]
            if not _is_kit(target) or attr is None:
                raise BundleError(f"{wanted_by}: {module}.{name} is not defined in {module} (re-exported from "
                                  f"{target}), which cannot be written into the model file")
            self.need(target, attr, wanted_by)
            return
        if name not in mod.defs:
            raise BundleError(f"{wanted_by}: {module} defines no top-level {name!r}")
        if self.owner.get(name, module) != module:
            raise BundleError(f"{wanted_by}: two kit definitions of {name!r} ({self.owner[name]} and {module}) would "
                              "clash in one model file")
        self.done.add(key)
        self.owner[name] = module
        stmt = mod.defs[name]
        self.uses(mod, stmt, f"{module}.{name}")
        self.order.append(key)

    def uses(self, mod: _Module, node: ast.AST, wanted_by: str) -> None:
        """Collect what ``node`` (code of ``mod``) refers to: its module's definitions, kit and other imports."""
        for imp in _nested_kit_imports(node):
            for alias in imp.names:
                self.need(str(imp.module), alias.name, wanted_by)
        for used in sorted(_names_used(node)):
            if used in mod.defs:
                self.need(mod.name, used, wanted_by)
            elif used in mod.imports:
                target, attr, stmt = mod.imports[used]
                if _is_kit(target):
                    if attr is None:
                        raise BundleError(f"{wanted_by}: uses the kit module {target} itself ({used}); import the "
                                          "names it needs instead")
                    self.need(target, attr, wanted_by)
                    if used != attr and f"{used} = {attr}" not in self.aliases:
                        self.aliases.append(f"{used} = {attr}")          # after every definition
                else:
                    self.external.setdefault(used, _import_source(stmt, used))


def _import_source(stmt: ast.stmt, local: str) -> str:
    """The import statement that binds ``local`` alone (``import torch.nn.functional as F``, ``from torch import nn``)."""
    for alias in stmt.names:  # type: ignore[attr-defined]
        if (alias.asname or alias.name.split(".")[0]) == local or alias.asname == local:
            if isinstance(stmt, ast.ImportFrom):
                return ast.unparse(ast.ImportFrom(module=stmt.module, names=[alias], level=stmt.level))
            return ast.unparse(ast.Import(names=[alias]))
    raise AssertionError(local)


class _StripKitImports(ast.NodeTransformer):
    """Kit imports inside functions become ``alias = name`` or ``pass`` (the names now live at the top level)."""

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.stmt:
        if node.level or not _is_kit(node.module):
            return node
        aliased = [a for a in node.names if a.asname and a.asname != a.name]
        if not aliased:
            return ast.Pass()
        if len(aliased) == 1:
            return ast.Assign(targets=[ast.Name(aliased[0].asname, ast.Store())],
                              value=ast.Name(aliased[0].name, ast.Load()), lineno=0)
        return ast.Assign(targets=[ast.Tuple([ast.Name(a.asname, ast.Store()) for a in aliased], ast.Store())],
                          value=ast.Tuple([ast.Name(a.name, ast.Load()) for a in aliased], ast.Load()), lineno=0)


def _render(stmt: ast.stmt, source: str) -> str:
    """The statement's own text (comments kept, decorators included); re-generated from the tree when kit imports
    inside it had to be stripped."""
    if _nested_kit_imports(stmt):
        return ast.unparse(ast.fix_missing_locations(_StripKitImports().visit(stmt)))
    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    return "\n".join(source.splitlines()[first - 1:stmt.end_lineno])


def self_contained_source(source: str, filename: str = "model.py") -> str:
    """``source`` with every kit import replaced by the kit code it needs (see the module docstring).

    The file's own text is kept line for line (comments included) but for its kit imports: top-level ones are
    removed, nested ones become ``alias = name`` (or ``pass``). A source that imports nothing from the kit is returned
    unchanged."""
    if not kit_imports(source, filename):
        return source
    tree = ast.parse(source, filename)
    collector = _Collector()
    lines = source.splitlines()
    stmts = list(tree.body)
    head_end = 0                                                # lines kept above the kit code: comments, docstring
    if stmts and isinstance(stmts[0], ast.Expr) and isinstance(getattr(stmts[0], "value", None), ast.Constant) \
            and isinstance(stmts[0].value.value, str):
        head_end = stmts[0].end_lineno or 0
        stmts = stmts[1:]
    elif stmts:
        head_end = stmts[0].lineno - 1
    replaced: dict[int, tuple[int, str]] = {}                  # first line (1-based) -> (last line, new text)
    aliases: list[str] = []
    for stmt in stmts:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            replaced[stmt.lineno] = (stmt.end_lineno or stmt.lineno, "")
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and _is_kit(stmt.module):
            for alias in stmt.names:
                if alias.name == "*":
                    raise BundleError(f"{filename}: 'from {stmt.module} import *' cannot be resolved")
                collector.need(str(stmt.module), alias.name, filename)
                if alias.asname and alias.asname != alias.name:
                    aliases.append(f"{alias.asname} = {alias.name}")
            replaced[stmt.lineno] = (stmt.end_lineno or stmt.lineno, "")
        elif isinstance(stmt, ast.Import) and any(_is_kit(a.name) for a in stmt.names):
            raise BundleError(f"{filename}: 'import {', '.join(a.name for a in stmt.names)}' imports a kit module "
                              "itself; import the names it needs ('from ntirekit.x import Name')")
        else:
            for imp in _nested_kit_imports(stmt):
                for alias in imp.names:
                    collector.need(str(imp.module), alias.name, filename)
                indent = lines[imp.lineno - 1][:imp.col_offset]
                replaced[imp.lineno] = (imp.end_lineno or imp.lineno,
                                        indent + ast.unparse(_StripKitImports().visit_ImportFrom(imp)))
    body: list[str] = []
    number = head_end + 1
    while number <= len(lines):
        if number in replaced:
            last, text = replaced[number]
            if text:
                body.append(text)
            number = last + 1
        else:
            body.append(lines[number - 1])
            number += 1

    modules = list(dict.fromkeys(m for m, _ in collector.order))
    out = lines[:head_end] + ["", "from __future__ import annotations", ""]
    out += sorted(set(collector.external.values()), key=lambda s: (s.startswith("from "), s))
    out += ["", "# " + "-" * 100,
            f"# Written by ntirekit from {', '.join(modules)}, so that this file runs without ntirekit installed.",
            "# " + "-" * 100]
    current = None
    for module, name in collector.order:
        stmt = collector.modules[module].defs[name]
        if module != current:
            out += ["", f"# from {module}"]
            current = module
        text = _render(stmt, collector.modules[module].source)
        if text not in out:                                     # one assignment may define several names
            out += ["", text]
    out += ["", *collector.aliases, *aliases, "", "# " + "-" * 100, "# the entry's own code", ""]
    out += body
    text = "\n".join(out).strip("\n") + "\n"
    return re.sub(r"\n{4,}", "\n\n\n", text)                  # at most two blank lines where imports were


def make_self_contained(folder: str | os.PathLike) -> list[Path]:
    """Rewrite every ``*.py`` file under ``folder`` that imports the kit (:func:`self_contained_source`); returns them."""
    rewritten: list[Path] = []
    for path in sorted(Path(folder).rglob("*.py")):
        if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts):
            continue
        source = path.read_text(encoding="utf-8")
        try:
            text = self_contained_source(source, path.name)
        except SyntaxError as exc:
            raise BundleError(f"{path}: not valid Python ({exc.msg}, line {exc.lineno})") from None
        if text != source:
            path.write_text(text, encoding="utf-8")
            rewritten.append(path)
    return rewritten
