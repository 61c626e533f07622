"""A graph's identity: a digest of what it computes on one input, the same for every export of one network.

:func:`graph_id` runs a program on an input and digests the sequence of tensor operators it executes: each
operator's name, each tensor argument as the position of the operator that produced it (or, for a weight, the
SHA-256 of its content), each other argument by value. Size arithmetic (``sym_size``, Python operators on sizes) and
assertions are left out, their results appearing as the values the operators received, so a dynamic and a static
export of one network at that input give one identity; another network, other weights, or other arguments give
another. Records of one entry carry it (``graph_id``, on the counting input ``1x3x256x256`` for images), so a
leaderboard can require that the network whose outputs were scored is the network that was timed and counted.

:func:`structure_id` digests which operators a program applies to which weights, as a set (order, repetitions and
every argument but the weights left out): the layers a program uses whatever its input size. The programs of one
graph file (one per input size where the network exports only statically) must all have one structure, so a team
cannot export its real network for the counting size and another one for the sizes that are timed; an honest network
whose code depends on the size (one that cuts its input into a number of patches that grows with it) keeps its
structure.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import fx

from ntirekit.graph.read import Program


class _Trace(fx.Interpreter):
    """Runs a program and records its tensor-producing calls with canonical arguments."""

    def __init__(self, module: fx.GraphModule, weights: dict[str, str]):
        super().__init__(module)
        self.weights = weights
        self.labels: dict[fx.Node, Any] = {}     # tensor-valued nodes: their canonical name
        self.values: dict[fx.Node, Any] = {}     # other nodes: the value they produced (sizes)
        self.steps: list[Any] = []

    def _canonical(self, value: Any) -> Any:
        if isinstance(value, fx.Node):
            return self.labels[value] if value in self.labels else self._canonical(self.values.get(value))
        if isinstance(value, (list, tuple)):
            return [self._canonical(v) for v in value]
        if isinstance(value, (bool, int, str)) or value is None:
            return value
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.op == "get_attr":
            self.labels[n] = ["w", self.weights[n.target]]
        elif n.op == "placeholder":
            self.labels[n] = ["input"]
        elif n.op == "call_function":
            tensors = isinstance(out, torch.Tensor) or (
                isinstance(out, (list, tuple)) and any(isinstance(o, torch.Tensor) for o in out))
            if tensors:
                self.steps.append([n.meta.get("ntk_target", ""), self._canonical(list(n.args)),
                                   {k: self._canonical(v) for k, v in n.kwargs.items()}])
                self.labels[n] = ["s", len(self.steps) - 1]
            else:
                self.values[n] = out if isinstance(out, (bool, int, float)) or out is None else str(out)
        return out


def _steps(program: Program, x: torch.Tensor) -> list[Any]:
    """The tensor operators ``program`` executes on ``x``, each with its canonical arguments (:class:`_Trace`; a
    weight named by the SHA-256 of its content)."""
    weights = {attr: hashlib.sha256(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                                    ).hexdigest() for attr, t in program.module.named_buffers()}
    trace = _Trace(program.module, weights)
    with torch.no_grad():
        trace.run(x)
    return trace.steps


def graph_id(program: Program, x: torch.Tensor) -> str:
    """The identity (hex SHA-256) of ``program`` run on ``x``."""
    text = json.dumps(_steps(program, x), separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def structure_id(program: Program, x: torch.Tensor) -> str:
    """The layers ``program`` uses on ``x`` (see the module docstring): the set of (operator, weights it reads)."""
    layers = {json.dumps([step[0], sorted(_weights_in(step[1:]))]) for step in _steps(program, x)}
    return hashlib.sha256("\n".join(sorted(layers)).encode()).hexdigest()


def _weights_in(value: Any) -> set[str]:
    if isinstance(value, list) and len(value) == 2 and value[0] == "w" and isinstance(value[1], str):
        return {value[1]}
    if isinstance(value, (list, tuple)):
        return set().union(*(_weights_in(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_weights_in(v) for v in value.values())) if value else set()
    return set()


def example_shape(program: Program) -> tuple[int, ...]:
    """An input shape ``program`` was exported for (the smallest its declared range allows)."""
    return tuple(d if isinstance(d, int) else -(-d[0] // d[2]) * d[2] for d in program.dims)
