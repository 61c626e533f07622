"""The team mapping of an NTIRE ESR repository, read from its ``test_demo.py`` with :mod:`ast` (never executed).

The official harness builds each team in one branch of ``select_model``'s ``if model_id == N: ... elif ...`` chain::

    elif model_id == 23:
        from models.team23_safmnpp import SAFMNPP
        name, data_range = f"{model_id:02}_SAFMNPP", 1.0
        model_path = os.path.join('model_zoo', 'team23_safmnpp.pth')
        model = SAFMNPP(dim=36, n_blocks=6, ffn_scale=1.5, upscaling_factor=4)
        model.load_state_dict(torch.load(model_path)['params_ema'], strict=True)

:func:`derive_map` evaluates the constant parts of each branch (literals, f-strings with ``model_id``,
``os.path.join``, local names) and returns, per team, the table :mod:`ntirekit.pack.legacy` imports: model ``file`` and
``class`` (or factory function; ``importlib.import_module`` + ``getattr`` also count), ``kwargs`` (positional
arguments named through the class's ``__init__`` signature, read from the model file, following its imports), the
``checkpoint``, the nested ``key`` (``torch.load(p)['params']``; a conditional unwrap, ``if "params_ema" in sd:
sd = sd["params_ema"] elif "params" in sd: sd = sd["params"]``, is read as "unwrap where present": a list of keys,
the first the checkpoint holds, else its top level), ``rename`` pairs (``k.replace('module.', '')``),
``strict = false`` where the harness loads so, ``data_range`` and ``tile``. Negative ids are the baselines.

A branch that is ``pass``, builds no model, or whose files are absent is listed in ``skipped`` with its reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntirekit.pack.formats import inside_path

DEMO_FILE = "test_demo.py"
#: methods chained on a constructor call that do not change the model (``Net(...).eval().to(device)``)
CHAINED = frozenset({"eval", "to", "cuda", "cpu", "float", "half", "train", "requires_grad_"})


class Unknown(Exception):
    """An expression whose value cannot be known without running the code."""


@dataclass
class DerivedMap:
    """What :func:`derive_map` found: ``teams`` in the :mod:`ntirekit.pack.legacy` mapping layout (keys are the team ids
    as strings), and per skipped id its one-line reason."""

    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    def mapping(self) -> dict[str, Any]:
        return {"scale": 4, "teams": self.teams}


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    """The value of a constant expression (literals, names in ``env``, f-strings, ``os.path.join``, arithmetic)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        raise Unknown(node.id)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_evaluate(e, env) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unknown("**")
        return {_evaluate(k, env): _evaluate(v, env) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = _evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else (not value if isinstance(node.op, ast.Not) else value)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)
        ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
               ast.Pow: lambda a, b: a ** b}
        if type(node.op) in ops:
            try:
                return ops[type(node.op)](left, right)
            except Exception as exc:
                raise Unknown(ast.unparse(node)) from exc
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = _evaluate(value.format_spec, env) if value.format_spec else ""
                item = _evaluate(value.value, env)
                item = {115: str, 114: repr, 97: ascii}.get(value.conversion, lambda v: v)(item)
                parts.append(format(item, spec))
            else:
                parts.append(str(_evaluate(value, env)))
        return "".join(parts)
    if isinstance(node, ast.Call) and _dotted(node.func) in ("os.path.join", "join", "osp.join", "path.join") \
            and not node.keywords:
        return "/".join(str(_evaluate(a, env)) for a in node.args)
    raise Unknown(ast.unparse(node))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _is_model_id(node: ast.AST) -> bool:
    return _dotted(node).split(".")[-1] == "model_id"


def _branch_ids(test: ast.AST) -> list[int] | None:
    """The ids a branch test selects (``model_id == 3``, ``model_id in (3, 4)``, ``... or ...``), else None."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        ids = [_branch_ids(v) for v in test.values]
        return None if any(i is None for i in ids) else [n for i in ids for n in i]  # type: ignore[union-attr]
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right = test.left, test.comparators[0]
        if _is_model_id(right):
            left, right = right, left
        if not _is_model_id(left):
            return None
        try:
            value = _evaluate(right, {})
        except Unknown:
            return None
        if isinstance(test.ops[0], ast.Eq) and isinstance(value, int):
            return [value]
        if isinstance(test.ops[0], ast.In) and isinstance(value, list) and all(isinstance(v, int) for v in value):
            return list(value)
    return None


def branches(tree: ast.Module) -> list[tuple[list[int], list[ast.stmt]]]:
    """Every ``(ids, body)`` of the model-id chains in ``select_model`` (or anywhere, when there is none)."""
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "select_model"] or [tree]
    found: list[tuple[list[int], list[ast.stmt]]] = []
    for scope in scopes:
        for node in ast.walk(scope):
            if not isinstance(node, ast.If) or getattr(node, "_chained", False):
                continue
            while isinstance(node, ast.If):
                ids = _branch_ids(node.test)
                if ids is None:
                    break
                found.append((ids, node.body))
                rest = node.orelse
                node = rest[0] if len(rest) == 1 and isinstance(rest[0], ast.If) else None  # type: ignore[assignment]
                if node is not None:
                    node._chained = True  # type: ignore[attr-defined]
    return found


@dataclass
class _Branch:
    """What one branch states, as far as it can be known."""

    team: int
    env: dict[str, Any]
    symbols: dict[str, tuple[str, str]] = field(default_factory=dict)   # local name -> (module, attribute)
    modules: dict[str, str] = field(default_factory=dict)               # local name -> module
    loaded: dict[str, tuple[str | None, list[str | tuple[str, ...]]]] = field(default_factory=dict)  # name -> (checkpoint, keys)
    build: tuple[str, str, list[ast.expr], list[ast.keyword]] | None = None
    model_vars: set[str] = field(default_factory=set)
    checkpoint: str | None = None
    key: list[str | tuple[str, ...]] | None = None     # a tuple: one of these keys where present (conditional)
    strict: bool = True
    renames: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def constructor(self, node: ast.expr) -> tuple[str, str, list[ast.expr], list[ast.keyword]] | None:
        """``(module, attribute, args, keywords)`` when ``node`` builds a model from a repository module."""
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CHAINED \
                and isinstance(node.func.value, ast.Call):
            node = node.func.value
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.symbols:
            return (*self.symbols[func.id], node.args, node.keywords)
        if isinstance(func, ast.Attribute) and _dotted(func.value) in self.modules:
            return self.modules[_dotted(func.value)], func.attr, node.args, node.keywords
        if isinstance(func, ast.Call) and _dotted(func.func) == "getattr" and len(func.args) == 2 \
                and _dotted(func.args[0]) in self.modules:
            try:
                return self.modules[_dotted(func.args[0])], str(_evaluate(func.args[1], self.env)), node.args, \
                    node.keywords
            except Unknown:
                return None
        return None

    def conditional_unwrap(self, stmt: ast.If) -> bool:
        """``if "a" in sd: sd = sd["a"] elif "b" in sd: sd = sd["b"]`` (``in sd.keys()`` too; an ``else: pass``
        allowed) on a loaded checkpoint ``sd``: record the alternatives ``("a", "b")`` as one optional unwrapping
        level; False (nothing recorded) for any other ``if``."""
        name, options, node = None, [], stmt
        while node is not None:
            test, body = node.test, node.body
            if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)
                    and isinstance(test.left, ast.Constant) and isinstance(test.left.value, str)):
                return False
            holder = test.comparators[0]
            if isinstance(holder, ast.Call) and isinstance(holder.func, ast.Attribute) and holder.func.attr == "keys":
                holder = holder.func.value
            key = test.left.value
            if not (isinstance(holder, ast.Name) and holder.id in self.loaded and name in (None, holder.id)
                    and len(body) == 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1
                    and isinstance(body[0].targets[0], ast.Name) and body[0].targets[0].id == holder.id
                    and isinstance(body[0].value, ast.Subscript) and _dotted(body[0].value.value) == holder.id
                    and isinstance(body[0].value.slice, ast.Constant) and body[0].value.slice.value == key):
                return False
            name = holder.id
            options.append(key)
            rest = node.orelse
            if len(rest) == 1 and isinstance(rest[0], ast.If):
                node = rest[0]
            elif all(isinstance(s, ast.Pass) for s in rest):
                node = None
            else:
                return False
        assert name is not None
        path, keys = self.loaded[name]
        self.loaded[name] = (path, [*keys, tuple(options)])
        return True

    def checkpoint_of(self, node: ast.expr) -> tuple[str | None, list[str | tuple[str, ...]]] | None:
        """``(path, nested keys)`` when ``node`` is ``torch.load(path)[k]...`` or a name bound to one."""
        keys: list[str | tuple[str, ...]] = []
        while isinstance(node, ast.Subscript):
            try:
                keys.insert(0, str(_evaluate(node.slice, self.env)))
            except Unknown:
                keys.insert(0, "")          # a computed key (``loadnet[keyname]``): detected at load time
            node = node.value
        if isinstance(node, ast.Call) and _dotted(node.func).endswith("load") and node.args:
            try:
                return str(_evaluate(node.args[0], self.env)), keys
            except Unknown:
                return None, keys
        if isinstance(node, ast.Name) and node.id in self.loaded:
            path, inner = self.loaded[node.id]
            return path, inner + keys
        return None

    def _source(self, node: ast.expr) -> tuple[str | None, list[str]] | None:
        """The checkpoint a loop or comprehension walks (``state.items()``, ``state.keys()``, ``state``)."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("items", "keys"):
            node = node.func.value
        return self.checkpoint_of(node)

    def key_renames(self, node: ast.AST) -> None:
        """The ``k.replace('module.', '')`` calls in code that rewrites a checkpoint's keys, as rename pairs."""
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "replace" \
                    and len(call.args) == 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                                    for a in call.args):
                pair = [call.args[0].value, call.args[1].value]  # type: ignore[attr-defined]
                if pair not in self.renames:
                    self.renames.append(pair)

    def statement(self, stmt: ast.stmt, certain: bool = True) -> None:
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                self.symbols[alias.asname or alias.name] = (stmt.module, alias.name)
                self.modules.setdefault(alias.asname or alias.name, f"{stmt.module}.{alias.name}")
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self.modules[alias.asname or alias.name] = alias.name
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                self.assign(target, stmt.value, certain)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self.call(stmt.value)
        elif isinstance(stmt, ast.For) and self._source(stmt.iter) is not None:
            source = self._source(stmt.iter)             # for k, v in state.items(): new[k.replace(...)] = v
            self.key_renames(stmt)
            for node in ast.walk(stmt):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                            self.loaded[target.value.id] = source  # type: ignore[assignment]
        elif isinstance(stmt, ast.If) and self.conditional_unwrap(stmt):
            pass
        elif isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            for name in ("body", "orelse", "finalbody"):
                for inner in getattr(stmt, name, []):
                    self.statement(inner, certain=isinstance(stmt, ast.With) and certain)
            for handler in getattr(stmt, "handlers", []):
                for inner in handler.body:
                    self.statement(inner, certain=False)

    def assign(self, target: ast.expr, value: ast.expr, certain: bool) -> None:
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self.assign(t, v, certain)
            return
        if not isinstance(target, ast.Name):
            return
        name = target.id
        if isinstance(value, ast.Call) and _dotted(value.func) in ("importlib.import_module", "import_module"):
            try:
                self.modules[name] = str(_evaluate(value.args[0], self.env))
            except (Unknown, IndexError):
                pass
            return
        build = self.constructor(value)
        if build is not None:
            self.build = build
            self.model_vars.add(name)
            return
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in CHAINED \
                and _dotted(value.func.value) in self.model_vars:
            return                                             # model = model.to(device)
        ckpt = self.checkpoint_of(value)
        if ckpt is None and isinstance(value, ast.DictComp) and value.generators:
            ckpt = self._source(value.generators[0].iter)    # {k.replace(...): v for k, v in state.items()}
            if ckpt is not None:
                self.key_renames(value.key)
        if ckpt is not None:
            self.loaded[name] = ckpt
            return
        try:
            result = _evaluate(value, self.env)
        except Unknown:
            self.env.pop(name, None)
            return
        if certain or name not in self.env:
            self.env[name] = result
        elif self.env[name] != result:
            self.env.pop(name)                                  # set differently on different paths: unknown

    def call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute) or _dotted(func.value) not in self.model_vars:
            return
        if func.attr == "load_state_dict" and node.args:
            ckpt = self.checkpoint_of(node.args[0])
            if ckpt is not None:
                self.checkpoint, self.key = ckpt
            strict = next((k.value for k in node.keywords if k.arg == "strict"), None)
            if strict is None and len(node.args) > 1:
                strict = node.args[1]
            if strict is not None:
                try:
                    self.strict = bool(_evaluate(strict, self.env))
                except Unknown:
                    pass
        elif func.attr.startswith("load") and node.args:     # a team's own loader: model.load_weights(path)
            try:
                self.checkpoint, self.key = str(_evaluate(node.args[0], self.env)), []
                self.notes.append(f"the harness loads it with model.{func.attr}(...); loaded here as a state dict")
            except Unknown:
                pass


def _module_file(repo: Path, module: str) -> str | None:
    """The repository file of a dotted module (``models.team04_rlfn`` or a package's ``__init__.py``)."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (repo / candidate).is_file():
            return candidate.as_posix()
    return None


def signature_names(repo: Path, rel: str, name: str, depth: int = 4) -> list[str] | None:
    """The positional parameter names of class ``name`` (its ``__init__``, without ``self``) or function ``name``
    as defined in ``rel`` or in what it imports ``name`` from; None when not found or it takes ``*args``."""
    try:
        tree = ast.parse((repo / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is None:                                    # inherited: look at the first base defined here
                base = next((_dotted(b) for b in node.bases if _dotted(b)), "")
                return signature_names(repo, rel, base.split(".")[-1], depth - 1) if base and depth else []
            args = init.args
            return None if args.vararg else [a.arg for a in (args.posonlyargs + args.args)[1:]]
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return None if node.args.vararg else [a.arg for a in node.args.posonlyargs + node.args.args]
    if depth:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
                original = next(a.name for a in node.names if (a.asname or a.name) == name)
                package = Path(rel).parent.parts
                if node.level:
                    package = package[:len(package) - node.level + 1] if node.level > 1 else package
                    module = ".".join([*package, *(node.module.split(".") if node.module else [])])
                else:
                    module = node.module or ""
                target = _module_file(repo, module)
                if target:
                    return signature_names(repo, target, original, depth - 1)
    return None


def _team_table(repo: Path, branch: _Branch) -> dict[str, Any]:
    """The mapping table of a branch; raises ValueError with the reason it cannot be imported."""
    if branch.build is None:
        raise ValueError("the branch builds no model from the repository")
    module, attr, args, keywords = branch.build
    model_rel = _module_file(repo, module)
    if model_rel is None:
        raise ValueError(f"model file {Path(*module.split('.')).as_posix()}.py is absent")
    kwargs: dict[str, Any] = {}
    if args:
        names = signature_names(repo, model_rel, attr)
        if names is None or len(names) < len(args):
            raise ValueError(f"cannot name the positional arguments of {attr} from {model_rel}")
        for arg_name, arg in zip(names, args):
            kwargs[arg_name] = arg
    for keyword in keywords:
        if keyword.arg is None:
            raise ValueError(f"{attr}(**...) cannot be read without running it")
        kwargs[keyword.arg] = keyword.value
    values = {}
    for arg_name, node in kwargs.items():
        try:
            value = _evaluate(node, branch.env)
        except Unknown:
            raise ValueError(f"argument {arg_name}={ast.unparse(node)} is not a constant") from None
        if value is not None:                  # TOML has no None; an explicit None is taken as the default
            values[arg_name] = value
    if branch.checkpoint is None:
        raise ValueError("no checkpoint is loaded in the branch")
    checkpoint = inside_path(branch.checkpoint)
    if checkpoint is None:
        raise ValueError(f"checkpoint {branch.checkpoint!r} lies outside the repository")
    if "data_range" not in branch.env:
        raise ValueError("the branch states no data_range")
    table: dict[str, Any] = {"file": model_rel, "class": attr, "kwargs": values, "checkpoint": checkpoint,
                             "data_range": float(branch.env["data_range"])}
    keys = branch.key or []
    if keys and all(keys):
        table["key"] = key_spec(keys)
    strip = [old for old, new in branch.renames if not new]
    renames = [pair for pair in branch.renames if pair[1]]
    if strip:
        table["strip_prefix"] = strip[0]
    if renames:
        table["rename"] = renames
    if not branch.strict:
        table["strict"] = False
    tile = branch.env.get("tile")
    if isinstance(tile, int) and not isinstance(tile, bool) and tile > 0:
        table["tile"] = tile
    if branch.notes:
        table["note"] = "; ".join(branch.notes)
    return table


def key_spec(keys: list[str | tuple[str, ...]]) -> str | list[str]:
    """The ``[weights].key`` of a chain of fixed keys and optional levels (tuples: one of these where present):
    ``"a.b"`` when every level is fixed, else every path the chain can take, in the order the harness's code prefers
    them (an earlier level's choice first, each level's keys in order, the level skipped last); the top level is
    the implicit last resort (:func:`ntirekit.core.weights.extract_state_dict`)."""
    if all(isinstance(k, str) for k in keys):
        return ".".join(keys)  # type: ignore[arg-type]
    paths: list[list[str]] = [[]]
    for level in keys:
        choices: list[list[str]] = [[level]] if isinstance(level, str) else [[k] for k in level] + [[]]
        paths = [path + choice for path in paths for choice in choices]
    return [".".join(path) for path in paths if path]


def _around_chain(tree: ast.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """The constants ``select_model`` sets before its model-id chain (defaults, e.g. ``tile = None``) and after it
    (which override every branch), as far as they are constant."""
    scope = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "select_model"), None)
    if scope is None:
        return {}, {}
    chain = [i for i, s in enumerate(scope.body) if isinstance(s, ast.If) and _branch_ids(s.test) is not None]
    if not chain:
        return {}, {}
    before = _Branch(0, {})
    for stmt in scope.body[:chain[0]]:
        before.statement(stmt)
    after = _Branch(0, {})
    for stmt in scope.body[chain[-1] + 1:]:
        if isinstance(stmt, ast.Assign):
            after.statement(stmt)
    return before.env, after.env


def derive_map(repo_dir: str | Path) -> DerivedMap:
    """Read ``REPO/test_demo.py`` and return every team's mapping table (see the module docstring)."""
    repo = Path(repo_dir).resolve()
    demo = repo / DEMO_FILE
    try:
        tree = ast.parse(demo.read_text(encoding="utf-8", errors="replace"), str(demo))
    except OSError as exc:
        raise ValueError(f"{demo}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except SyntaxError as exc:
        raise ValueError(f"{demo}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"{demo}: nests too deeply to be read") from None
    found = branches(tree)
    if not found:
        raise ValueError(f"{demo}: no 'if model_id == N' chain found")
    before, after = _around_chain(tree)
    derived = DerivedMap()
    for ids, body in found:
        only_pass = all(isinstance(s, ast.Pass) or isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                        for s in body)
        for team in ids:
            if only_pass:
                derived.skipped[team] = "the branch is 'pass' (no submission)"
                continue
            try:
                branch = _Branch(team, {**before, "model_id": team})
                for stmt in body:
                    branch.statement(stmt)
                branch.env.update(after)
                table = _team_table(repo, branch)
            except ValueError as exc:
                derived.skipped[team] = str(exc)
                continue
            except RecursionError:
                derived.skipped[team] = "its branch of test_demo.py nests too deeply to be read"
                continue
            derived.teams[str(team)] = table
    return derived
