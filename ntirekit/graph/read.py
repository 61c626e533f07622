"""Read a graph file strictly and rebuild its programs as ``fx.GraphModule`` objects that call allowlisted ATen
operators only. This is the organizer's side: the file comes from a team's sandbox and is hostile until proven not.

:func:`read_graph` refuses (:class:`~ntirekit.graph.errors.GraphError`, one line) before anything of the file runs:

- anything but the layout of :mod:`ntirekit.graph.format`: a wrong magic, version or length, a key that is not part
  of the format at any level (a pickled weight or sample input, a guard, a symbolic expression have no place to go),
  a header or tensor data over the limits, a tensor whose declared shape, dtype and byte count disagree or lie
  outside the data;
- a call target off :data:`~ntirekit.graph.ops.ATEN_OPS` / :data:`~ntirekit.graph.ops.PYTHON_OPS` (``builtins.eval``,
  ``os.system``, ``torch.os.system``, a random-number operator...);
- an argument that does not fit the operator's schema (a string where a size goes, a dict, a reference to a value that
  is not defined before it or is of the wrong kind), a keyword the schema does not have.

The rebuilt module is code the kit generates from the allowlisted operator objects and literals it decoded itself
(node names are its own), with the file's tensors as buffers. Nothing is unpickled, nothing is imported by name,
``torch.export.load`` is never called, and no text from the file is evaluated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import fx, nn

from ntirekit.graph import format as fmt
from ntirekit.graph.errors import GraphError
from ntirekit.graph.ops import PYTHON_OPS, resolve

#: the integers an argument may be: ATen's int64 (an open slice end is exported as 2**63 - 1)
INT64 = (-2**63, 2**63 - 1)
#: value kinds of a graph's nodes, for the schema check
TENSOR, NUMBER, TENSORS, NONE = "tensor", "number", "tensors", "none"


@dataclass
class Program:
    """One program of a graph file: the input shapes it was exported for and its module.

    ``module`` is an ``fx.GraphModule`` whose buffers are the file's tensors; each of its nodes carries
    ``meta["ntk_target"]`` (the target's file name), ``meta["ntk_stack"]`` (module path, outermost first) and, for a
    state tensor, ``meta["ntk_tensor"]`` (its index in :attr:`Graph.tensors`) and ``meta["ntk_label"]``."""

    dims: list[Any]
    dtype: torch.dtype
    module: fx.GraphModule
    call: dict[str, Any] = field(default_factory=dict)

    def accepts(self, shape: Sequence[int], call: dict[str, Any] | None = None) -> bool:
        """Whether this program was exported for inputs of ``shape`` (and keyword arguments ``call``)."""
        if len(shape) != len(self.dims) or (call or {}) != self.call:
            return False
        for size, dim in zip(shape, self.dims):
            if isinstance(dim, int):
                if size != dim:
                    return False
            elif not (dim[0] <= size <= dim[1] and size % dim[2] == 0):
                return False
        return True


@dataclass
class Graph:
    """A vetted graph file: its programs, tensors and the exporter's module kinds."""

    programs: list[Program]
    tensors: list[torch.Tensor]
    modules: dict[str, str]

    def program_for(self, shape: Sequence[int], call: dict[str, Any] | None = None) -> Program:
        """The program exported for inputs of ``shape`` (and ``call``); :class:`GraphError` when there is none."""
        for program in self.programs:
            if program.accepts(shape, call):
                return program
        raise GraphError(f"the graph has no program for input shape {list(shape)}" + (f" and {call}" if call else ""))

    def to(self, device: torch.device | str) -> "Graph":
        """Move the tensors to ``device`` (in place), each once: programs share them, and make every device literal
        of the programs (each one stands for the device the graph runs on) name ``device``; returns ``self``."""
        device = torch.device(device)
        self.tensors = [t.to(device) for t in self.tensors]
        for program in self.programs:
            for attr in list(program.module._buffers):
                program.module._buffers[attr] = self.tensors[int(attr[1:])]
            _retarget(program.module, device)
        return self


def _retarget(module: fx.GraphModule, device: torch.device) -> None:
    """Make every ``torch.device`` argument of ``module``'s nodes ``device`` (recompiled only when one changed)."""
    changed = False

    def swap(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, torch.device):
            changed = changed or value != device
            return device
        if isinstance(value, (list, tuple)):
            return type(value)(swap(v) for v in value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    for node in module.graph.nodes:
        if node.op == "call_function":
            node.args, node.kwargs = swap(node.args), swap(node.kwargs)
    if changed:
        module.recompile()


def _fail(message: str) -> GraphError:
    return GraphError(message[:300])


def _keys(obj: Any, where: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(f"{where} must be an object")
    allowed = {*required, *optional}
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(f"{where} has a key the format does not have: {str(extra[0])[:60]!r}")
    missing = sorted(set(required) - set(obj))
    if missing:
        raise _fail(f"{where} lacks {missing[0]!r}")
    return obj


def _int(value: Any, where: str, low: int = 0, high: int = fmt.MAX_DIM) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(f"{where} must be an integer in [{low}, {high}], got {str(value)[:60]!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > fmt.MAX_TEXT:
        raise _fail(f"{where} must be a string of at most {fmt.MAX_TEXT} characters")
    return value


def _header(data: bytes | memoryview) -> tuple[dict[str, Any], memoryview]:
    view = memoryview(data)
    if len(view) < fmt.PREFIX.size:
        raise _fail("not a graph file (too short)")
    magic, version, length = fmt.PREFIX.unpack_from(view)
    if magic != fmt.MAGIC:
        raise _fail("not a graph file (bad magic)")
    if version != fmt.VERSION:
        raise _fail(f"graph format version {version}; this kit reads version {fmt.VERSION}")
    if length > fmt.MAX_HEADER_BYTES or fmt.PREFIX.size + length > len(view):
        raise _fail(f"graph header of {length} bytes is over the limit or past the end of the file")
    raw = bytes(view[fmt.PREFIX.size:fmt.PREFIX.size + length])

    def no_constants(name: str) -> Any:
        raise _fail(f"graph header holds the non-JSON constant {name}")

    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _fail(f"graph header is not JSON ({type(exc).__name__})") from None
    return header, view[fmt.PREFIX.size + length:]


def _tensors(specs: Any, blob: memoryview, limit: int) -> list[torch.Tensor]:
    if not isinstance(specs, list) or len(specs) > fmt.MAX_TENSORS:
        raise _fail("tensors must be a list of at most %d entries" % fmt.MAX_TENSORS)
    tensors, total = [], 0
    for i, spec in enumerate(specs):
        where = f"tensor {i}"
        _keys(spec, where, ("dtype", "shape", "offset", "nbytes"))
        dtype = fmt.DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
        if dtype is None:
            raise _fail(f"{where} has dtype {str(spec['dtype'])[:40]!r}, which the format does not have")
        shape = spec["shape"]
        if not isinstance(shape, list) or len(shape) > fmt.MAX_RANK:
            raise _fail(f"{where}: shape must be a list of at most {fmt.MAX_RANK} sizes")
        sizes = [_int(s, f"{where} shape") for s in shape]
        numel = math.prod(sizes)
        nbytes = _int(spec["nbytes"], f"{where} nbytes", 0, limit)
        offset = _int(spec["offset"], f"{where} offset", 0, 2**62)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != nbytes:
            raise _fail(f"{where} declares shape {sizes[:8]} of {spec['dtype']} ({numel * itemsize} bytes) but "
                        f"{nbytes} bytes")
        total += nbytes
        if total > limit:
            raise _fail(f"the graph's tensors hold more than {limit} bytes")
        if offset + nbytes > len(blob):
            raise _fail(f"{where} lies past the end of the file")
        raw = bytearray(blob[offset:offset + nbytes])
        flat = torch.frombuffer(raw, dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
        tensors.append(flat.view(dtype).reshape(sizes) if nbytes else torch.empty(sizes, dtype=dtype))
    return tensors


# ------------------------------------------------------------------------------------------------- argument values

@dataclass(frozen=True)
class _Ref:
    name: str


def _literal(value: Any, where: str, depth: int = 0) -> Any:
    """A decoded argument: Python literals, :class:`_Ref` for references, torch objects for the tagged kinds."""
    if depth > 8:
        raise _fail(f"{where}: arguments nest too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _int(value, where, *INT64)
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        if len(value) > 4096:
            raise _fail(f"{where}: a list of more than 4096 values")
        return [_literal(v, where, depth + 1) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise _fail(f"{where}: {type(value).__name__} is not an argument value of the format")
    tag, inner = next(iter(value.items()))
    if tag == "ref":
        return _Ref(_text(inner, where))
    if tag == "float":
        if inner not in ("inf", "-inf", "nan"):
            raise _fail(f"{where}: float {str(inner)[:40]!r} is not inf, -inf or nan")
        return float(inner)
    if tag == "str":
        return _text(inner, where)
    if tag == "slice":
        if not isinstance(inner, list) or len(inner) != 3:
            raise _fail(f"{where}: a slice is [start, stop, step]")
        return slice(*(None if v is None else _int(v, where, *INT64) for v in inner))
    table: dict[str, Any] | None = {"dtype": fmt.DTYPES, "layout": fmt.LAYOUTS,
                                    "memory_format": fmt.MEMORY_FORMATS}.get(tag)
    if table is not None:
        if inner not in table:
            raise _fail(f"{where}: {tag} {str(inner)[:40]!r} is not one the format has")
        return table[inner]
    if tag == "device":
        if inner not in ("cpu", "cuda", "meta"):
            raise _fail(f"{where}: device {str(inner)[:40]!r} is not cpu or cuda")
        return _DEVICE
    raise _fail(f"{where}: {str(tag)[:40]!r} is not an argument tag of the format")


class _Device:
    """Stands for "the device the graph runs on" (every device literal of a file becomes it)."""


_DEVICE = _Device()


def _kind_of_type(type_text: str) -> str:
    if type_text == "Tensor":
        return TENSOR
    if type_text in ("List[Tensor]",):
        return TENSORS
    if type_text in ("int", "float", "bool", "number", "SymInt"):
        return NUMBER
    return "other"


def _returns(target: Any) -> str | tuple[str, ...]:
    if not isinstance(target, torch._ops.OpOverload):
        return NUMBER
    kinds = tuple(_kind_of_type(str(r.real_type)) for r in target._schema.returns)
    if not kinds:
        return NONE
    return kinds[0] if len(kinds) == 1 else kinds


def _fits(type_text: str, value: Any, kinds: dict[str, Any], where: str) -> None:
    optional = type_text.startswith("Optional[")
    inner = type_text[len("Optional["):-1] if optional else type_text
    if value is None:
        if optional:
            return
        raise _fail(f"{where}: None where {type_text} goes")
    if isinstance(value, _Ref):
        kind = kinds.get(value.name)
        if kind is None:
            raise _fail(f"{where}: refers to {value.name[:60]!r}, which is not defined before it")
        if (inner == "Tensor" and kind == TENSOR) or (inner in ("List[Tensor]", "List[Optional[Tensor]]")
                                                      and kind == TENSORS):
            return
        if inner in ("int", "SymInt", "float", "number", "bool", "Tensor") and kind == NUMBER:
            return      # a number where a tensor goes is wrapped as a 0-d tensor, as torch does
        raise _fail(f"{where}: a {kind} value where {type_text} goes")
    if inner == "Tensor":
        if isinstance(value, (int, float, bool)):
            return      # a Python number where a tensor goes: torch wraps it as a 0-d tensor
        raise _fail(f"{where}: a {type(value).__name__} literal where a tensor goes")
    if inner.startswith("List["):
        element = inner[len("List["):-1]
        if isinstance(value, list):
            for v in value:
                _fits(element, v, kinds, where)
            return
        if element in ("int", "SymInt", "float", "bool"):     # int[2] arguments may be given as one number
            _fits(element, value, kinds, where)
            return
        raise _fail(f"{where}: {type(value).__name__} where {type_text} goes")
    expected: dict[str, tuple[type, ...]] = {
        "int": (int,), "SymInt": (int,), "float": (int, float), "number": (int, float, bool), "bool": (bool,),
        "str": (str,), "ScalarType": (torch.dtype,), "Layout": (torch.layout,),
        "MemoryFormat": (torch.memory_format,), "Device": (_Device,)}
    types = expected.get(inner)
    if types is None:
        raise _fail(f"{where}: arguments of type {type_text} have no place in a graph")
    if not isinstance(value, types) or (inner in ("int", "SymInt") and isinstance(value, bool)):
        raise _fail(f"{where}: {type(value).__name__} where {type_text} goes")


def _check_call(name: str, target: Any, args: list[Any], kwargs: dict[str, Any], kinds: dict[str, Any],
                where: str) -> Any:
    """Check a call against the operator's schema; the kind of value it returns."""
    if not isinstance(target, torch._ops.OpOverload):
        if name == "operator.getitem":
            if len(args) != 2 or kwargs or not isinstance(args[0], _Ref):
                raise _fail(f"{where}: getitem takes a reference and an index")
            kind = kinds.get(args[0].name)
            if kind is None:
                raise _fail(f"{where}: refers to {args[0].name[:60]!r}, which is not defined before it")
            index = args[1]
            if kind == TENSORS and isinstance(index, int) and not isinstance(index, bool):
                return TENSOR
            if isinstance(kind, tuple) and isinstance(index, int) and not isinstance(index, bool) \
                    and -len(kind) <= index < len(kind):
                return kind[index]
            raise _fail(f"{where}: getitem of a {kind} value by {type(index).__name__}")
        if kwargs or not all(isinstance(a, (int, float, bool)) or (isinstance(a, _Ref) and kinds.get(a.name) == NUMBER)
                             for a in args):
            raise _fail(f"{where}: {name} takes numbers only")
        return NUMBER
    schema = target._schema.arguments
    if len(args) > len(schema):
        raise _fail(f"{where}: {len(args)} arguments for an operator that takes {len(schema)}")
    by_name = {a.name: a for a in schema}
    for value, arg in zip(args, schema):
        if arg.kwarg_only:
            raise _fail(f"{where}: argument {arg.name} is keyword-only")
        _fits(str(arg.real_type), value, kinds, f"{where} argument {arg.name}")
    for key, value in kwargs.items():
        if key not in by_name:
            raise _fail(f"{where}: the operator has no argument {str(key)[:40]!r}")
        _fits(str(by_name[key].real_type), value, kinds, f"{where} argument {key}")
    return _returns(target)


def _build(value: Any, env: dict[str, fx.Node], device: torch.device) -> Any:
    if isinstance(value, _Ref):
        return env[value.name]
    if isinstance(value, _Device):
        return device
    if isinstance(value, list):
        return [_build(v, env, device) for v in value]
    return value


def _program(spec: Any, index: int, tensors: list[torch.Tensor], root: nn.Module, device: torch.device) -> Program:
    where = f"program {index}"
    _keys(spec, where, ("inputs", "state", "nodes", "outputs"), ("call",))
    call = _call(spec.get("call", {}), where)
    inputs = spec["inputs"]
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise _fail(f"{where} must take exactly one input")
    _keys(inputs[0], f"{where} input", ("name", "dtype", "dims"))
    dtype = fmt.DTYPES.get(inputs[0]["dtype"]) if isinstance(inputs[0]["dtype"], str) else None
    if dtype is None or not dtype.is_floating_point:
        raise _fail(f"{where}: the input must be a floating tensor")
    dims = inputs[0]["dims"]
    if not isinstance(dims, list) or not 1 <= len(dims) <= fmt.MAX_RANK:
        raise _fail(f"{where}: dims must list the input's sizes")
    checked_dims: list[Any] = []
    for d in dims:
        if isinstance(d, list) and len(d) == 3:
            checked_dims.append([_int(d[0], f"{where} dims"), _int(d[1], f"{where} dims"),
                                 _int(d[2], f"{where} dims", 1)])
        else:
            checked_dims.append(_int(d, f"{where} dims"))
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    kinds: dict[str, Any] = {}

    def define(name: Any, node: fx.Node, kind: Any) -> None:
        name = _text(name, f"{where} name")
        if name in env:
            raise _fail(f"{where}: {name[:60]!r} is defined twice")
        env[name], kinds[name] = node, kind

    define(inputs[0]["name"], graph.placeholder("x"), TENSOR)
    state = spec["state"]
    if not isinstance(state, list) or len(state) > fmt.MAX_TENSORS:
        raise _fail(f"{where}: state must be a list")
    for item in state:
        _keys(item, f"{where} state", ("name", "tensor", "label"))
        t = _int(item["tensor"], f"{where} state tensor", 0, len(tensors) - 1) if tensors else None
        if t is None:
            raise _fail(f"{where}: state refers to a tensor the file does not have")
        if item["label"] not in fmt.LABELS:
            raise _fail(f"{where}: state label {str(item['label'])[:40]!r} is not one the format has")
        attr = f"t{t}"
        if not hasattr(root, attr):
            root.register_buffer(attr, tensors[t])
        node = graph.get_attr(attr)
        node.meta.update(ntk_tensor=t, ntk_label=item["label"], ntk_target="state", ntk_stack=[])
        define(item["name"], node, TENSOR)
    nodes = spec["nodes"]
    if not isinstance(nodes, list) or len(nodes) > fmt.MAX_NODES:
        raise _fail(f"{where}: nodes must be a list of at most {fmt.MAX_NODES}")
    for k, item in enumerate(nodes):
        at = f"{where} node {k}"
        _keys(item, at, ("name", "target", "args", "kwargs"), ("stack",))
        name = _text(item["target"], f"{at} target")
        target = resolve(name)
        if not isinstance(item["args"], list) or not isinstance(item["kwargs"], dict):
            raise _fail(f"{at}: args must be a list and kwargs an object")
        args = [_literal(v, at) for v in item["args"]]
        kwargs = {_text(key, at): _literal(v, at) for key, v in item["kwargs"].items()}
        kind = _check_call(name, target, args, kwargs, kinds, f"{at} ({name})")
        node = graph.call_function(target, tuple(_build(args, env, device)),
                                   {key: _build(v, env, device) for key, v in kwargs.items()})
        stack = item.get("stack", [])
        if not isinstance(stack, list) or len(stack) > fmt.MAX_STACK or not all(
                isinstance(s, list) and len(s) == 2 and all(isinstance(p, str) and len(p) <= fmt.MAX_TEXT for p in s)
                for s in stack):
            raise _fail(f"{at}: stack must be a list of [path, type] strings")
        node.meta.update(ntk_target=name, ntk_stack=[tuple(s) for s in stack])
        define(item["name"], node, kind)
    outputs = spec["outputs"]
    if not isinstance(outputs, list) or not outputs:
        raise _fail(f"{where}: outputs must list at least one value")
    decoded = [_literal(v, f"{where} output") for v in outputs]
    for value in decoded:
        if not isinstance(value, _Ref) or kinds.get(value.name) != TENSOR:
            raise _fail(f"{where}: every output must be a reference to a tensor")
    built = [env[v.name] for v in decoded]
    graph.output(built[0] if len(built) == 1 else tuple(built))
    graph.lint()
    return Program(checked_dims, dtype, fx.GraphModule(root, graph), call)


def _call(value: Any, where: str) -> dict[str, Any]:
    """A program's keyword arguments: names to integers, lists of at most 4096 integers, or null."""
    if not isinstance(value, dict) or len(value) > 16:
        raise _fail(f"{where}: call must be an object of at most 16 arguments")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _text(key, f"{where} call")
        if item is None or (isinstance(item, int) and not isinstance(item, bool)):
            out[name] = item if item is None else _int(item, f"{where} call", -2**31, 2**31)
        elif isinstance(item, list) and len(item) <= 4096:
            out[name] = [_int(v, f"{where} call", -2**31, 2**31) for v in item]
        else:
            raise _fail(f"{where}: call argument {name[:40]!r} must be an integer, a list of integers or null")
    return out


def read_graph(data: bytes | memoryview, *, device: torch.device | str = "cpu",
               max_tensor_bytes: int = fmt.MAX_TENSOR_BYTES) -> Graph:
    """The vetted :class:`Graph` of a graph file, its tensors on ``device``; :class:`GraphError` (one line, nothing
    of the file run) for anything the module docstring lists. ``max_tensor_bytes`` bounds the tensor data."""
    header, blob = _header(data)
    _keys(header, "graph header", ("format", "version", "programs", "tensors", "modules"), ("torch",))
    if header["format"] != fmt.FORMAT or header["version"] != fmt.VERSION:
        raise _fail("graph header names another format or version")
    tensors = _tensors(header["tensors"], blob, max_tensor_bytes)
    device = torch.device(device)
    modules = header["modules"]
    if not isinstance(modules, dict) or len(modules) > fmt.MAX_NODES or not all(
            isinstance(k, str) and len(k) <= fmt.MAX_TEXT and v in fmt.MODULE_KINDS for k, v in modules.items()):
        raise _fail("modules must map module paths to " + "/".join(fmt.MODULE_KINDS))
    programs = header["programs"]
    if not isinstance(programs, list) or not 1 <= len(programs) <= fmt.MAX_PROGRAMS:
        raise _fail(f"programs must be a list of 1 to {fmt.MAX_PROGRAMS}")
    root = nn.Module()
    built = [_program(p, i, tensors, root, device) for i, p in enumerate(programs)]
    graph = Graph(built, tensors, dict(modules))
    return graph.to(device)


__all__ = ["Graph", "Program", "read_graph", "PYTHON_OPS"]
