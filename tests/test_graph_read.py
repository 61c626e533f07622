"""Reading a hostile graph file (issue 25): refused in one line before any of it runs, and nothing of it executes.

Each case starts from a valid file the kit exported from a tiny model and tampers with its JSON header the way a team's
sandbox could: a call target off the allowlist (``aten.bernoulli``, ``builtins.eval``, ``os.system``,
``torch.os.system``), a pickled weight or sample input, a symbolic size expression that runs a command, a guard
string, an oversized tensor declaration, a wrong byte count, a forward reference, a string where an int goes, a key the
format does not have (at every level), non-JSON constants. Every payload would create a marker file if it were ever
unpickled, evaluated or executed (:func:`test_the_payloads_are_live` proves it); :func:`read_graph` must raise
:class:`GraphError` with one line, the marker must never appear, and the reader must not even call an unpickler,
``torch.export.load``, ``torch.load`` or ``sympy.sympify`` while refusing. An honest file reads back to a network whose
outputs are bit-identical to the eager model's; and no module of ``ntirekit/graph``, ``ntirekit/measure`` or
``ntirekit/eval`` calls ``torch.export.load`` or an unpickler at all (an AST scan, itself tested on a bad snippet).
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import os
import pickle
import shlex
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from ntirekit.graph import format as fmt
from ntirekit.graph.errors import GraphError
from ntirekit.graph.export import export_graph
from ntirekit.graph.read import read_graph

REPO = Path(__file__).resolve().parents[1]


class Tiny(nn.Module):
    """conv 3->12, ReLU, a view whose sizes are symbolic in a dynamic export, pixel shuffle x2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.act = nn.ReLU()
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        return self.up(y.view(y.shape[0], 12, y.shape[2], y.shape[3]))


class Switching(Tiny):
    """The same, with a branch on the input's width: no dynamic export, one static program per size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y * 2 if x.shape[-1] == 10 else y


SHAPES = [(1, 3, 8, 8), (1, 3, 12, 10)]


def _model(cls: type[nn.Module] = Tiny) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


@pytest.fixture(scope="module")
def honest() -> bytes:
    graph = export_graph(_model(), SHAPES)
    assert graph.dynamic and graph.programs == 1
    return graph.data


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A graph file's JSON header and its tensor data."""
    magic, version, length = fmt.PREFIX.unpack_from(data)
    assert magic == fmt.MAGIC and version == fmt.VERSION
    return json.loads(data[fmt.PREFIX.size:fmt.PREFIX.size + length]), data[fmt.PREFIX.size + length:]


def join(header: dict[str, Any] | str, blob: bytes) -> bytes:
    """A graph file of ``header`` (an object, or JSON text as is) and ``blob``."""
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    return fmt.PREFIX.pack(fmt.MAGIC, fmt.VERSION, len(text)) + text + blob


# ------------------------------------------------------------------------------------------------- the payloads

class _Touch:
    """Unpickling this runs ``touch MARKER`` (``os.system``), as a tampered ``.pt2`` weight would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def pickled(marker: Path) -> bytes:
    return pickle.dumps(_Touch(marker))


def b64_pickle(marker: Path) -> str:
    return base64.b64encode(pickled(marker)).decode()


def expression(marker: Path) -> str:
    """A symbolic size as a tampered ``.pt2`` would carry it: ``sympy.sympify`` (and ``eval``) run it."""
    return f"s0 + 0*__import__('os').system('touch {marker}')"


def guard(marker: Path) -> str:
    """A ``guards_code`` line: pasted into source and ``exec``'d by ``ExportedProgram.module()``."""
    return f"__import__('os').system('touch {marker}')"


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Each payload, run the way torch's loader would run it, does create its marker: the tests below can fail."""
    markers = [tmp_path / name for name in ("pickle", "expression", "guard")]
    pickle.loads(pickled(markers[0]))                                # noqa: S301 - the point of this test
    eval(expression(markers[1]), {"s0": 1})                          # noqa: S307
    exec(guard(markers[2]), {})                                      # noqa: S102
    assert all(m.is_file() for m in markers)


# ------------------------------------------------------------------------------------------------- tampering

Tamper = Callable[[dict[str, Any], bytes, Path], "tuple[dict[str, Any] | str, bytes]"]


def _node(header: dict[str, Any], target: str) -> dict[str, Any]:
    return next(n for n in header["programs"][0]["nodes"] if n["target"] == target)


def _set(path: str, value: Callable[[Path], Any]) -> Tamper:
    """Set ``header[path]`` (``/``-separated keys and list indices; a node by its target: ``node:aten.view.default``)
    to ``value(marker)``."""
    def tamper(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[dict[str, Any], bytes]:
        *parents, last = path.split("/")
        obj: Any = header
        for key in parents:
            obj = _node(header, key[5:]) if key.startswith("node:") else obj[int(key) if key.isdigit() else key]
        obj[int(last) if last.isdigit() else last] = value(marker)
        return header, blob
    return tamper


def _add_node(target: str, args: Callable[[Path], list[Any]]) -> Tamper:
    """A node calling ``target`` first in the program."""
    def tamper(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[dict[str, Any], bytes]:
        node = {"name": "evil", "target": target, "args": args(marker), "kwargs": {}, "stack": []}
        header["programs"][0]["nodes"].insert(0, node)
        return header, blob
    return tamper


def _pickle_as_tensor(dtype: str) -> Tamper:
    """The pickle's bytes appended as a tensor's data, declared with a pickle-like dtype, bound as a weight."""
    def tamper(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[dict[str, Any], bytes]:
        data = pickled(marker)
        header["tensors"].append({"dtype": dtype, "shape": [len(data)], "offset": len(blob), "nbytes": len(data)})
        header["programs"][0]["state"][0]["tensor"] = len(header["tensors"]) - 1
        return header, blob + data
    return tamper


def _text(edit: Callable[[str, Path], str]) -> Tamper:
    """Edit the header's JSON text (for what ``json.dumps`` would not write)."""
    def tamper(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[str, bytes]:
        return edit(json.dumps(header), marker), blob
    return tamper


def _forward_reference(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[dict[str, Any], bytes]:
    _node(header, "aten.conv2d.default")["args"][0] = {"ref": "relu"}           # relu comes after conv2d
    return header, blob


def _nested(header: dict[str, Any], blob: bytes, marker: Path) -> tuple[str, bytes]:
    return json.dumps(header).replace('"kwargs": {}', '"kwargs": {}, "deep": ' + "[" * 100_000 + "]" * 100_000, 1), blob


#: case -> (tampering, a fragment the one-line refusal must hold: the reason it names)
CASES: dict[str, tuple[Tamper, str]] = {
    # call targets off the allowlist
    "op-off-allowlist": (_set("node:aten.relu.default/target", lambda m: "aten.bernoulli.default"), "allowlist"),
    "builtins.eval": (_add_node("builtins.eval", lambda m: [{"str": guard(m)}]), "allowlist"),
    "os.system": (_add_node("os.system", lambda m: [{"str": f"touch {m}"}]), "allowlist"),
    "torch.os.system": (_add_node("torch.os.system", lambda m: [{"str": f"touch {m}"}]), "allowlist"),
    "builtins.exec-by-relu": (_set("node:aten.relu.default/target", lambda m: "builtins.exec"), "allowlist"),
    # pickles
    "pickled-weight-key": (_set("tensors/0/pickle", b64_pickle), "does not have"),
    "pickled-weights-in-header": (_set("weights", b64_pickle), "does not have"),
    "pickled-state-entry": (_set("programs/0/state/0/pickle", b64_pickle), "does not have"),
    "pickle-as-tensor-data": (_pickle_as_tensor("pickle"), "dtype"),
    "object-as-tensor-data": (_pickle_as_tensor("object"), "dtype"),
    "storage-as-tensor-data": (_pickle_as_tensor("torch.FloatStorage"), "dtype"),
    "pickled-sample-inputs": (_set("sample_inputs", b64_pickle), "does not have"),
    "pickled-example-inputs-in-program": (_set("programs/0/example_inputs", b64_pickle), "does not have"),
    "pickled-input-in-input-spec": (_set("programs/0/inputs/0/example", b64_pickle), "does not have"),
    # symbolic size expressions
    "expression-in-tensor-shape": (_set("tensors/1/shape/0", expression), "integer"),
    "expression-in-dims": (_set("programs/0/inputs/0/dims/2", expression), "integer"),
    "expression-in-dims-range": (_set("programs/0/inputs/0/dims/2/0", expression), "integer"),
    "expression-in-op-argument": (_set("node:aten.view.default/args/1/2", expression), "not an argument value"),
    "expression-as-tagged-string": (_set("node:aten.view.default/args/1/2", lambda m: {"str": expression(m)}),
                                    "where int goes"),
    "expression-as-reference": (_set("node:aten.view.default/args/1/2", lambda m: {"ref": expression(m)}),
                                "not defined before"),
    "expression-in-kwargs": (_set("node:aten.pixel_shuffle.default/kwargs/upscale_factor", expression),
                             "not an argument value"),
    "symbolic-tag": (_set("node:aten.view.default/args/1/2", lambda m: {"sym": expression(m)}), "not an argument tag"),
    "expression-in-range-constraints": (_set("range_constraints", lambda m: {expression(m): [2, 100]}),
                                        "does not have"),
    # guards
    "guard-in-header": (_set("guards_code", lambda m: [guard(m)]), "does not have"),
    "guard-in-program": (_set("programs/0/guards", lambda m: [guard(m)]), "does not have"),
    "guard-in-node": (_set("node:aten.relu.default/guard", guard), "does not have"),
    # sizes and bytes
    "oversized-tensor": (_set("tensors/0/shape", lambda m: [2**31 - 1, 2**31 - 1, 3, 3]), "bytes"),
    "oversized-consistent-tensor": (_set("tensors/0", lambda m: {"dtype": "float32", "shape": [2**20, 2**20],
                                                                 "offset": 0, "nbytes": 4 * 2**40}), "nbytes"),
    "tensor-past-the-end": (_set("tensors/1/offset", lambda m: 10**6), "past the end"),
    "wrong-byte-count": (_set("tensors/0/nbytes", lambda m: 1296 + 4), "bytes"),
    "negative-offset": (_set("tensors/1/offset", lambda m: -48), "offset"),
    "rank-too-high": (_set("tensors/1/shape", lambda m: [1] * 9 + [12]), "at most"),
    # references and types
    "forward-reference": (_forward_reference, "not defined before"),
    "string-for-int": (_set("node:aten.pixel_shuffle.default/args/1", lambda m: "2"), "not an argument value"),
    "tagged-string-for-int": (_set("node:aten.pixel_shuffle.default/args/1", lambda m: {"str": "2"}), "where int goes"),
    "string-for-stride": (_set("node:aten.conv2d.default/args/3", lambda m: {"str": "[1, 1]"}), "where int goes"),
    "float-for-int": (_set("node:aten.pixel_shuffle.default/args/1", lambda m: 2.0), "where int goes"),
    "bool-for-int": (_set("node:aten.pixel_shuffle.default/args/1", lambda m: True), "where int goes"),
    "dict-for-tensor": (_set("node:aten.relu.default/args/0", lambda m: {"ref": "x", "also": 1}),
                        "not an argument value"),
    "reference-to-unknown": (_set("node:aten.relu.default/args/0", lambda m: {"ref": "nowhere"}), "not defined before"),
    "output-not-a-tensor": (_set("programs/0/outputs/0", lambda m: 3), "output"),
    "state-tensor-out-of-range": (_set("programs/0/state/0/tensor", lambda m: 7), "integer"),
    # keys the format does not have, at every level
    "unknown-key-header": (_set("extra", lambda m: 1), "does not have"),
    "unknown-key-tensor": (_set("tensors/0/note", lambda m: "x"), "does not have"),
    "unknown-key-program": (_set("programs/0/code", lambda m: guard(m)), "does not have"),
    "unknown-key-input": (_set("programs/0/inputs/0/meta", lambda m: {}), "does not have"),
    "unknown-key-state": (_set("programs/0/state/1/source", lambda m: guard(m)), "does not have"),
    "unknown-key-node": (_set("node:aten.relu.default/meta", lambda m: {"val": guard(m)}), "does not have"),
    "unknown-argument-name": (_set("node:aten.relu.default/kwargs/evil", lambda m: 1), "no argument"),
    "unknown-literal-tag": (_set("node:aten.pixel_shuffle.default/args/1", lambda m: {"eval": guard(m)}),
                            "not an argument tag"),
    "unknown-module-kind": (_set("modules/conv", lambda m: "exec"), "modules"),
    "unknown-state-label": (_set("programs/0/state/0/label", lambda m: "pickle"), "label"),
    "unknown-dtype-literal": (_set("tensors/0/dtype", lambda m: "float80"), "dtype"),
    # not JSON, not this format
    "nan-constant": (_text(lambda t, m: t.replace('"args": [{"ref": "view"}, 2]', '"args": [{"ref": "view"}, NaN]')),
                     "non-JSON"),
    "infinity-constant": (_text(lambda t, m: t.replace('"offset": 0', '"offset": Infinity', 1)), "non-JSON"),
    "minus-infinity-constant": (_text(lambda t, m: t.replace('[1, 1], [1, 1]]', '[1, 1], [-Infinity, 1]]', 1)),
                                "non-JSON"),
    "deep-nesting": (_nested, "not JSON"),
    "another-format": (_set("format", lambda m: "pt2"), "format"),
    "another-version": (_set("version", lambda m: 2), "format"),
}


@pytest.fixture()
def spies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every loader torch's own path would use, replaced by one that records its call and refuses."""
    import sympy

    called: list[str] = []

    def spy(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            raise RuntimeError(f"{name} called")
        return refuse

    for owner, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load"),
                        (torch.export, "load"), (sympy, "sympify")):
        monkeypatch.setattr(owner, attr, spy(f"{owner.__name__}.{attr}"))
    return called


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_is_refused_in_one_line_and_nothing_runs(case: str, honest: bytes, tmp_path: Path,
                                                              spies: list[str]) -> None:
    marker = tmp_path / "MARKER"
    header, blob = split(honest)
    tamper, reason = CASES[case]
    data = join(*tamper(copy.deepcopy(header), blob, marker))
    assert data != join(header, blob)                    # the case changed something (both written the same way)
    with pytest.raises(GraphError) as refused:
        read_graph(data)
    message = str(refused.value)
    assert message and "\n" not in message and len(message) <= 300, message
    assert reason in message, message
    assert not marker.exists()
    assert spies == []


@pytest.mark.parametrize("case", ["bad-magic", "another-version-prefix", "header-past-the-end", "too-short"])
def test_a_broken_container_is_refused_in_one_line(case: str, honest: bytes) -> None:
    magic, version, length = fmt.PREFIX.unpack_from(honest)
    rest = honest[fmt.PREFIX.size:]
    data = {"bad-magic": fmt.PREFIX.pack(b"PK\x03\x04xxxx", version, length) + rest,
            "another-version-prefix": fmt.PREFIX.pack(magic, version + 1, length) + rest,
            "header-past-the-end": fmt.PREFIX.pack(magic, version, len(honest)) + rest,
            "too-short": honest[:10]}[case]
    with pytest.raises(GraphError) as refused:
        read_graph(data)
    assert "\n" not in str(refused.value)


def test_the_tampering_helpers_change_what_they_say(honest: bytes, tmp_path: Path) -> None:
    """The cases above start from a file that reads; each changes the part it names (a case that edits nothing
    would pass for the wrong reason: the read refuses, and the file differs from the honest one)."""
    header, blob = split(honest)
    assert read_graph(join(header, blob)).programs
    for case, (tamper, _) in CASES.items():
        assert join(*tamper(copy.deepcopy(header), blob, tmp_path / "m")) != join(header, blob), case
    for case in ("nan-constant", "infinity-constant", "minus-infinity-constant"):
        text, _ = CASES[case][0](copy.deepcopy(header), blob, tmp_path / "m")
        assert isinstance(text, str) and ("NaN" in text or "Infinity" in text), case


# ------------------------------------------------------------------------------------------------- honest files

@pytest.mark.parametrize("cls, programs", [(Tiny, 1), (Switching, 2)])
def test_an_honest_file_reads_back_bit_identical(cls: type[nn.Module], programs: int) -> None:
    model = _model(cls)
    graph = read_graph(export_graph(model, SHAPES).data)
    assert len(graph.programs) == programs
    for shape in SHAPES:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(shape[-1]))
        with torch.no_grad():
            eager, read = model(x), graph.program_for(shape).module(x)
        assert read.shape == eager.shape and torch.equal(read, eager)
    if cls is Switching:                   # the branch was taken in one program only: they differ
        x = torch.rand(SHAPES[1])
        assert torch.equal(graph.program_for(SHAPES[1]).module(x), 2 * Tiny.forward(model, x))


# ------------------------------------------------------------------------------------------------- the kit's code

SCANNED = ("ntirekit/graph", "ntirekit/measure", "ntirekit/eval")
#: dotted call names that load pickles or torch's archives, or evaluate text
FORBIDDEN_CALLS = {"torch.export.load", "export.load", "pickle.load", "pickle.loads", "pickle.Unpickler",
                   "Unpickler", "sympify", "sympy.sympify", "eval", "exec", "dill.load", "dill.loads",
                   "cloudpickle.load", "cloudpickle.loads", "marshal.loads", "torch._export.load"}
FORBIDDEN_IMPORTS = {("torch.export", "load"), ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
                     ("sympy", "sympify")}
FORBIDDEN_MODULES = {"pickle", "dill", "cloudpickle", "marshal", "shelve"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    return ""


def forbidden(source: str, where: str = "<source>") -> list[str]:
    """Every call, import or ``torch.load(..., weights_only=False)`` of ``source`` that could run a file's code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS or name.endswith((".export.load", "pickle.load", "pickle.loads")):
                found.append(f"{where}:{node.lineno}: {name}(...)")
            if name.endswith("load") and any(k.arg == "weights_only" and not (
                    isinstance(k.value, ast.Constant) and k.value.value is True) for k in node.keywords):
                found.append(f"{where}:{node.lineno}: {name}(weights_only not True)")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_IMPORTS or node.module in FORBIDDEN_MODULES:
                    found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: import {a.name}" for a in node.names if a.name in FORBIDDEN_MODULES]
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    bad = textwrap.dedent('''
        import pickle
        import torch
        from torch.export import load
        from sympy import sympify
        program = torch.export.load(path)
        weights = pickle.loads(blob)
        state = torch.load(path, weights_only=False)
        size = eval(text)
        ''')
    assert len(forbidden(bad)) == 7
    assert forbidden("import torch\nmodel.eval()\ntorch.load(p, weights_only=True)\n") == []


def test_the_kit_never_loads_a_pickle_or_an_archive_where_graphs_are_read_and_measured() -> None:
    files = sorted(p for folder in SCANNED for p in (REPO / folder).rglob("*.py"))
    assert len(files) > 20 and any(p.name == "read.py" for p in files)
    found = [hit for p in files for hit in forbidden(p.read_text(), str(p.relative_to(REPO)))]
    assert found == []
