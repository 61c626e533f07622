"""Export a network with ``torch.export`` and write it in the kit's graph format (:mod:`ntirekit.graph.format`).

This runs where the network's code runs (for a team entry: in the sandbox). :func:`export_graph` takes the input
shapes the organizer will run the graph on and exports:

- **dynamic** height and width: one program per group of shapes that differ only in height and width, valid from
  the group's smallest to its largest size (a multiple of the entry's ``multiple``); else
- **static**: one program per shape (a guard the solver cannot prove, e.g. pooling to ``H // 8`` or a float
  ``scale_factor``, makes the dynamic export fail; so does a dynamic export that runs past
  :data:`DYNAMIC_EXPORT_S`, as torch's shape solver does on a few honest networks).

Programs are kept in ``torch.export``'s default IR (ATen operators as the network called them, so the graph computes
bit for bit what the module computes); where a program calls an operator off the allowlist (a grad-mode region,
say), its ``run_decompositions({})`` form is tried. A network whose programs still call such an operator, or that
``torch.export`` cannot trace, raises :class:`~ntirekit.graph.errors.NotExportable` with one line.

Nothing here is trusted by the reader: the organizer's process vets the file (:mod:`ntirekit.graph.read`) and checks
that the graph reproduces the outputs that were scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import fx, nn

from ntirekit.core.text import one_line
from ntirekit.graph import format as fmt
from ntirekit.graph.errors import NotExportable
from ntirekit.graph.kinds import module_kinds
from ntirekit.graph.ops import is_allowed, target_name

_LABELS = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "constant"}
#: how long the dynamic export may take before the static programs are exported instead [s]
DYNAMIC_EXPORT_S = 120.0


@dataclass(frozen=True)
class ExportedGraph:
    """A written graph file and how it was made: ``dynamic`` (height and width) or one static program per shape."""

    data: bytes
    programs: int
    dynamic: bool
    seconds: float


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one clean line of at most 240 characters (its type's name when it has none)."""
    return one_line(str(exc), 240) or type(exc).__name__


def _groups(shapes: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], list[tuple[int, ...]]]:
    groups: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for shape in dict.fromkeys(tuple(int(s) for s in shape) for shape in shapes):
        groups.setdefault(shape[:-2], []).append(shape)
    return groups


def _dims(shape: tuple[int, ...], low: tuple[int, int], high: tuple[int, int], multiple: int) -> list[Any]:
    return [*shape[:-2], [low[0], high[0], multiple], [low[1], high[1], multiple]]


def _dynamic(model: nn.Module, group: list[tuple[int, ...]], multiple: int) -> tuple[Any, list[Any]] | None:
    """One program for every shape of ``group`` (dynamic height and width), or None when that fails."""
    heights = [s[-2] for s in group]
    widths = [s[-1] for s in group]
    low, high = (min(heights), min(widths)), (max(heights), max(widths))
    if low == high:
        return None
    example = max(group, key=lambda s: (s[-2] != s[-1], s[-2] * s[-1]))
    dims = []
    for axis, (lo, hi) in enumerate(zip(low, high)):
        name = "hw"[axis]
        if lo == hi:
            dims.append(None)
        elif multiple > 1:
            dims.append(multiple * torch.export.Dim(f"{name}_{multiple}", min=max(1, math.ceil(lo / multiple)),
                                                    max=hi // multiple))
        else:
            dims.append(torch.export.Dim(name, min=max(2, lo), max=hi))
    spec = {len(example) - 2 + i: d for i, d in enumerate(dims) if d is not None}
    try:
        with _time_bound(DYNAMIC_EXPORT_S):
            program = torch.export.export(model, (_example(model, example),), dynamic_shapes=(spec,))
    except Exception:  # noqa: BLE001 - any failure of the dynamic export falls back to static programs
        return None
    return program, _dims(example, low, high, multiple)


class _OutOfTime(Exception):
    """The dynamic export ran past :data:`DYNAMIC_EXPORT_S`."""


@contextlib.contextmanager
def _time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`_OutOfTime` in the block after ``seconds`` (SIGALRM; only in the main thread, else unbounded).
    torch's symbolic shape solver can run for tens of minutes on some honest networks; the static export follows."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise _OutOfTime(f"dynamic export ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _example(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """An example input of ``shape`` on the device of ``model``'s first parameter or buffer (the CPU if none)."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    return torch.rand(shape, device=device)


def _allowed(program: Any) -> Any:
    """``program``, or its ``run_decompositions({})`` form when only that calls allowlisted operators."""
    bad = _off_list(program)
    if not bad:
        return program
    try:
        program = program.run_decompositions({})
    except Exception as exc:  # noqa: BLE001 - the decomposition is a second chance, not a requirement
        raise NotExportable(f"calls {bad}, which is outside the kit's allowlist ({_one_line(exc)})") from exc
    bad = _off_list(program)
    if bad:
        raise NotExportable(f"calls {bad}, which is outside the kit's allowlist")
    return program


def _off_list(program: Any) -> str:
    for node in program.graph.nodes:
        if node.op == "get_attr":
            return f"a submodule ({node.target})"
        if node.op == "call_function" and not is_allowed(target_name(node.target)):
            return target_name(node.target)
    return ""


class _Bound(nn.Module):
    """``model`` called with fixed keyword arguments (exported as constants of the program)."""

    def __init__(self, model: nn.Module, kwargs: dict[str, Any]):
        super().__init__()
        self.model, self.kwargs = model, kwargs

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x, **self.kwargs)


def export_calls(model: nn.Module, calls: Sequence[tuple[Sequence[int], dict[str, Any]]]) -> ExportedGraph:
    """``model`` exported as one static program per distinct call ``(input shape, keyword arguments)`` (video models
    called with PQF positions); the keyword arguments are kept with each program (``"call"``)."""
    started = time.perf_counter()
    model = model.eval()
    programs: list[tuple[Any, list[Any]]] = []
    kwargs_of: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    seen: set[str] = set()
    for shape, kwargs in calls:
        key = json.dumps([list(shape), kwargs], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        bound = _Bound(model, dict(kwargs))
        try:
            program = torch.export.export(bound, (_example(model, tuple(shape)),))
        except Exception as exc:  # noqa: BLE001 - whatever torch.export says is the entry's one line
            raise NotExportable(f"torch.export fails at input {list(shape)} {kwargs or ''}: {_one_line(exc)}") from exc
        programs.append((_allowed(program), list(shape)))
        kwargs_of.append(dict(kwargs))
        kinds = module_kinds(bound)
    data = write_graph(programs, kinds, kwargs_of)
    return ExportedGraph(data, len(programs), False, time.perf_counter() - started)


def export_programs(model: nn.Module, shapes: Sequence[Sequence[int]],
                    multiple: int = 1) -> tuple[list[tuple[Any, list[Any]]], bool]:
    """``[(ExportedProgram, dims)]`` covering every shape of ``shapes`` and whether they are dynamic (see the module
    docstring); :class:`NotExportable` with one line when the network cannot be exported."""
    model = model.eval()
    programs: list[tuple[Any, list[Any]]] = []
    dynamic = True
    for group in _groups([tuple(s) for s in shapes]).values():
        found = _dynamic(model, group, multiple)
        if found is not None:
            programs.append((_allowed(found[0]), found[1]))
            continue
        dynamic = False
        for shape in group:
            try:
                program = torch.export.export(model, (_example(model, shape),))
            except Exception as exc:  # noqa: BLE001 - whatever torch.export says is the entry's one line
                raise NotExportable(f"torch.export fails at input {list(shape)}: {_one_line(exc)}") from exc
            programs.append((_allowed(program), list(shape)))
    return programs, dynamic


# ----------------------------------------------------------------------------------------------- writing the file

def _literal(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return {"ref": value.name}
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    if isinstance(value, torch.dtype):
        return {"dtype": fmt.DTYPE_NAMES[value]}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    raise NotExportable(f"an argument of type {type(value).__name__} has no place in the kit's graph format")


def _stack(node: fx.Node) -> list[list[str]]:
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for value in list(stack.values())[-fmt.MAX_STACK:]:
        path, kind = value[0], value[1]
        out.append([str(path)[:fmt.MAX_TEXT], str(getattr(kind, "__qualname__", kind))[:fmt.MAX_TEXT]])
    return out


class _Tensors:
    """The file's tensor table: each distinct tensor (by content) once."""

    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []
        self.chunks: list[bytes] = []
        self._index: dict[tuple[str, tuple[int, ...], str], int] = {}
        self._offset = 0

    def add(self, tensor: torch.Tensor) -> int:
        tensor = tensor.detach().cpu().contiguous()
        if tensor.dtype not in fmt.DTYPE_NAMES:
            raise NotExportable(f"a tensor of dtype {tensor.dtype} has no place in the kit's graph format")
        data = tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        key = (fmt.DTYPE_NAMES[tensor.dtype], tuple(tensor.shape), hashlib.sha256(data).hexdigest())
        if key not in self._index:
            self._index[key] = len(self.specs)
            self.specs.append({"dtype": key[0], "shape": list(key[1]), "offset": self._offset, "nbytes": len(data)})
            self.chunks.append(data)
            self._offset += len(data)
        return self._index[key]


def _program(program: Any, dims: list[Any], tensors: _Tensors) -> dict[str, Any]:
    signature = program.graph_signature
    state_of = {**program.state_dict, **program.constants}
    inputs, state = [], []
    for spec in signature.input_specs:
        name = spec.arg.name
        if spec.kind.name == "USER_INPUT":
            inputs.append(name)
        elif spec.kind.name in _LABELS:
            state.append({"name": name, "tensor": tensors.add(state_of[spec.target]), "label": _LABELS[spec.kind.name]})
        else:
            raise NotExportable(f"the exported program takes a {spec.kind.name.lower()} input, which the kit's "
                                "graph format does not carry")
    if len(inputs) != 1:
        raise NotExportable(f"the exported program takes {len(inputs)} inputs; the kit's graphs take one")
    user_outputs = {s.arg.name for s in signature.output_specs if s.kind.name == "USER_OUTPUT"}
    nodes: list[dict[str, Any]] = []
    outputs: list[Any] = []
    example = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0])
    for node in program.graph.nodes:
        if node.op == "call_function":
            nodes.append({"name": node.name, "target": target_name(node.target), "args": _literal(list(node.args)),
                          "kwargs": {k: _literal(v) for k, v in node.kwargs.items()}, "stack": _stack(node)})
        elif node.op == "output":
            returned = node.args[0] if isinstance(node.args[0], (list, tuple)) else [node.args[0]]
            outputs = [_literal(v) for v in returned if isinstance(v, fx.Node) and v.name in user_outputs]
    dtype = example.meta["val"].dtype if "val" in example.meta else torch.float32
    return {"inputs": [{"name": inputs[0], "dtype": fmt.DTYPE_NAMES.get(dtype, "float32"), "dims": dims}],
            "state": state, "nodes": nodes, "outputs": outputs}


def write_graph(programs: Sequence[tuple[Any, list[Any]]], modules: dict[str, str],
                calls: Sequence[dict[str, Any]] | None = None) -> bytes:
    """The graph file of ``programs`` (``(ExportedProgram, dims)`` pairs), ``modules`` (path -> 2022 kind) and, for
    programs of calls with keyword arguments, those arguments (one dict per program)."""
    tensors = _Tensors()
    written = [_program(p, dims, tensors) for p, dims in programs]
    for program, call in zip(written, calls or ()):
        if call:
            program["call"] = call
    header = {"format": fmt.FORMAT, "version": fmt.VERSION, "torch": torch.__version__,
              "programs": written, "tensors": tensors.specs, "modules": modules}
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"".join([fmt.PREFIX.pack(fmt.MAGIC, fmt.VERSION, len(text)), text, *tensors.chunks])


def export_graph(model: nn.Module, shapes: Sequence[Sequence[int]], multiple: int = 1) -> ExportedGraph:
    """``model`` exported for every input shape of ``shapes`` and written as a graph file (see the module
    docstring)."""
    started = time.perf_counter()
    programs, dynamic = export_programs(model, shapes, multiple)
    data = write_graph(programs, module_kinds(model))
    return ExportedGraph(data, len(programs), dynamic, time.perf_counter() - started)
