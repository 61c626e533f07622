"""Coupled channel groups of a model, found by tracing it (``torch.fx``) channel by channel.

Structured pruning removes a channel everywhere at once: from the filters that produce it, from the inputs of the
convolutions that read it, and from every tensor it is added to, multiplied with or concatenated into. This module
finds those sets without any per-architecture code:

1. the model is traced with ``torch.fx`` and shape-propagated on a small input;
2. every channel of every 4-D tensor is a node of a union-find; operations join channels (``a + b``, ``a * b``: channel
   k of both operands and of the result; ``cat`` along channels: offsets; ``split``/``chunk``/slices: sub-ranges;
   elementwise ops, pooling, interpolation, padding and per-channel parameters pass channels through);
3. a convolution's output channels are new nodes (its *producer* role); its input channels get a *consumer* role;
   depthwise convolutions pass channels through; BatchNorm, PReLU and 4-D parameters read with ``get_attr`` get a
   *param* role (sliced along with the channel);
4. channels that must keep their count are *locked*: the model input and output, the input of a pixel shuffle (the
   last conv before ``PixelShuffle`` keeps ``3·scale²`` outputs), channels reduced over (``x.mean(1)``), channels fed
   to ``split``/``chunk``/slicing (their sizes are constants baked into ``forward``), and anything that meets an
   operation the tracer does not know (conservative: unknown means keep);
5. the unlocked connected components that have a producer are the prunable channels; channels whose components touch
   the same modules in the same roles form one :class:`ChannelGroup` (e.g. RLFN's trunk feature map between two
   blocks: ``block_1.c5``, ``block_1.esa.conv4`` produce it, ``block_2.c1_r``, ``block_2.c5`` read it, and
   ``block_2.c3_r`` produces into it through the residual add).

A group is named after its first producer in execution order (``conv_1``, ``block_3.c1_r``).
"""

from __future__ import annotations

import copy
import operator
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ntirekit.core.errors import NtirekitError

__all__ = ["Role", "Channel", "ChannelGroup", "ChannelGraph", "trace_channels", "TraceError"]


class TraceError(NtirekitError, RuntimeError):
    """The model cannot be traced (``torch.fx`` refuses its ``forward``) or run on the tracing input."""


#: (module or attribute path, kind, index). kind: "out" (conv output filter), "in" (conv input column), "dw" (depthwise
#: conv channel), "param" (BatchNorm/PReLU per-channel parameter), "attr" (dim 1 of a 4-D tensor read by get_attr).
Role = tuple[str, str, int]


@dataclass
class Channel:
    """One prunable channel: every place it lives, by role."""

    roles: list[Role]


@dataclass
class ChannelGroup:
    """Channels that touch the same modules in the same roles: one 'width' of the network."""

    name: str
    channels: list[Channel]
    modules: tuple[tuple[str, str], ...]          # sorted (path, kind) signature

    @property
    def width(self) -> int:
        return len(self.channels)

    def producer_modules(self) -> list[str]:
        return sorted({p for p, k in self.modules if k == "out"})

    def consumer_modules(self) -> list[str]:
        return sorted({p for p, k in self.modules if k == "in"})


@dataclass
class ChannelGraph:
    """The result of :func:`trace_channels`: the prunable groups and the channel count of every role-holding module."""

    groups: list[ChannelGroup]
    locked_reasons: list[str] = field(default_factory=list)

    def group(self, name: str) -> ChannelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no prunable channel group {name!r} (groups: {', '.join(g.name for g in self.groups)})")

    def widths(self) -> dict[str, int]:
        return {g.name: g.width for g in self.groups}


# ---------------------------------------------------------------------------------------------------------------------
# operation tables

_BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub, operator.imul,
           operator.itruediv, torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum}
_BINARY_METHODS = {"add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_", "maximum", "minimum"}
#: channel-preserving functions of one tensor (plus non-tensor arguments)
_UNARY = {F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, F.hardswish, F.hardsigmoid, F.mish, F.sigmoid,
          F.tanh, F.softplus, torch.relu, torch.sigmoid, torch.tanh, torch.abs, torch.sqrt, torch.exp, torch.clamp,
          F.interpolate, F.upsample, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
          F.dropout, torch.neg, operator.neg, operator.pow, torch.pow}
_UNARY_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "clamp", "clamp_", "clamp_min", "clamp_max", "abs",
                  "pow", "sqrt", "exp", "neg", "contiguous", "float", "double", "half", "type_as"}
_REDUCE_METHODS = {"mean", "sum", "amax", "amin", "std", "var"}
_REDUCE_FUNCS = {torch.mean, torch.sum, torch.amax, torch.amin, torch.std, torch.var}
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                 nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d,
                 nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.ZeroPad2d,
                 nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ConstantPad2d)


class _Chan:
    """The channel node ids of one 4-D tensor value."""

    __slots__ = ("ids",)

    def __init__(self, ids: list[int]):
        self.ids = ids


class _Tuple:
    __slots__ = ("items",)

    def __init__(self, items: list[Any]):
        self.items = items


class _Tracer:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.locked: set[int] = set()
        self.roles: dict[int, list[Role]] = defaultdict(list)
        self.order: dict[int, int] = {}           # channel id -> creation order (for naming and ordering)
        self.reasons: list[str] = []

    # union-find
    def new(self, n: int, locked: bool = False) -> _Chan:
        start = len(self.parent)
        ids = list(range(start, start + n))
        self.parent.extend(ids)
        for i in ids:
            self.order[i] = i
        if locked:
            self.locked.update(ids)
        return _Chan(ids)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def join(self, a: _Chan, b: _Chan) -> None:
        for i, j in zip(a.ids, b.ids):
            self.union(i, j)

    def lock(self, value: Any, reason: str) -> None:
        chans = list(_chans(value))
        if chans:
            self.locked.update(i for c in chans for i in c.ids)
            self.reasons.append(reason)


def _chans(value: Any) -> Iterable[_Chan]:
    if isinstance(value, _Chan):
        yield value
    elif isinstance(value, _Tuple):
        for item in value.items:
            yield from _chans(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _chans(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _chans(item)


def _meta_shapes(node: fx.Node) -> Any:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return None
    if hasattr(meta, "shape"):
        return tuple(meta.shape)
    if isinstance(meta, (list, tuple)):
        return [tuple(m.shape) if hasattr(m, "shape") else None for m in meta]
    return None


def _channels(node: fx.Node) -> int | None:
    shape = _meta_shapes(node)
    if isinstance(shape, tuple) and len(shape) == 4:
        return int(shape[1])
    return None


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _norm_dim(dim: Any, ndim: int = 4) -> Any:
    if isinstance(dim, int):
        return dim % ndim
    if isinstance(dim, (list, tuple)):
        return tuple(d % ndim for d in dim)
    return dim


def _propagate_shapes(gm: fx.GraphModule, model: nn.Module, shape: tuple[int, ...]) -> None:
    """Shapes of every node, computed on the meta device (no arithmetic) when the model allows, else for real."""
    ref = next(model.parameters(), None)
    dtype = ref.dtype if ref is not None else torch.float32
    try:
        meta = fx.GraphModule(copy.deepcopy(model).to("meta"), gm.graph)
        with torch.no_grad():
            ShapeProp(meta).propagate(torch.empty(shape, dtype=dtype, device="meta"))
        return
    except Exception:  # some ops have no meta kernel: run on the model's device instead
        pass
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.rand(shape, dtype=dtype, device=ref.device if ref is not None else "cpu"))
    except Exception as exc:
        raise TraceError(f"running {type(model).__name__} on {shape} failed: {exc}") from None


def trace_channels(model: nn.Module, example: torch.Tensor | Sequence[int] = (1, 3, 64, 64)) -> ChannelGraph:
    """The prunable channel groups of ``model`` (see the module docstring). ``example``: an input or its shape."""
    shape = tuple(example.shape) if isinstance(example, torch.Tensor) else tuple(example)
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many types for untraceable code
        raise TraceError(f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: {exc}") from None
    _propagate_shapes(gm, model, shape)

    t = _Tracer()
    env: dict[fx.Node, Any] = {}

    def val(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return env.get(a)
        if isinstance(a, (list, tuple)):
            return [val(x) for x in a]
        return a

    def fresh(node: fx.Node, locked: bool = False) -> Any:
        c = _channels(node)
        return t.new(c, locked) if c is not None else None

    def fallback(node: fx.Node, why: str) -> Any:
        t.lock([val(a) for a in node.args] + [val(v) for v in node.kwargs.values()], why)
        return fresh(node, locked=True)

    def elementwise(node: fx.Node, operands: list[Any]) -> Any:
        """Join operands with the output's channel count; broadcast (1-channel) operands do not couple."""
        c = _channels(node)
        if c is None:
            return fallback(node, f"{node.name}: non-4-D result")
        out = None
        for op in operands:
            if isinstance(op, _Chan):
                if len(op.ids) == c:
                    if out is None:
                        out = op
                    else:
                        t.join(out, op)
                elif len(op.ids) != 1:
                    return fallback(node, f"{node.name}: unexpected broadcast")
            elif isinstance(op, fx.Node) and isinstance(_meta_shapes(op), tuple):
                shape = _meta_shapes(op)
                if len(shape) == 4 and shape[1] == c and c > 1:     # an untracked full-channel tensor
                    return fallback(node, f"{node.name}: untracked per-channel operand")
        return out if out is not None else t.new(c, locked=True)

    for node in gm.graph.nodes:
        op, target = node.op, node.target
        if op == "placeholder":
            env[node] = fresh(node, locked=True)
        elif op == "get_attr":
            c = _channels(node)            # a 4-D parameter/buffer: its dim 1 is sliced with the channel
            if c is not None and c > 1:
                chan = t.new(c)
                for k, i in enumerate(chan.ids):
                    t.roles[i].append((str(target), "attr", k))
                env[node] = chan
            else:
                env[node] = None
        elif op == "output":
            t.lock(val(node.args[0]), "model output")
        elif op == "call_module":
            mod = gm.get_submodule(str(target))
            x = val(node.args[0]) if node.args else None
            name = str(target)
            if isinstance(mod, nn.Conv2d) and isinstance(x, _Chan):
                if mod.groups == 1:
                    for k, i in enumerate(x.ids):
                        t.roles[i].append((name, "in", k))
                    out = t.new(mod.out_channels)
                    for k, i in enumerate(out.ids):
                        t.roles[i].append((name, "out", k))
                    env[node] = out
                elif mod.groups == mod.in_channels == mod.out_channels:
                    for k, i in enumerate(x.ids):
                        t.roles[i].append((name, "dw", k))
                    env[node] = x
                else:
                    env[node] = fallback(node, f"{name}: grouped conv")
            elif isinstance(mod, nn.BatchNorm2d) and isinstance(x, _Chan):
                for k, i in enumerate(x.ids):
                    t.roles[i].append((name, "param", k))
                env[node] = x
            elif isinstance(mod, nn.PReLU) and isinstance(x, _Chan):
                if mod.num_parameters > 1:
                    for k, i in enumerate(x.ids):
                        t.roles[i].append((name, "param", k))
                env[node] = x
            elif isinstance(mod, _PASS_MODULES) and isinstance(x, _Chan) and _channels(node) == len(x.ids):
                env[node] = x
            elif isinstance(mod, (nn.PixelShuffle, nn.PixelUnshuffle)):
                env[node] = fallback(node, f"{name}: pixel shuffle")
            else:
                env[node] = fallback(node, f"{name}: {type(mod).__name__} not understood")
        elif op in ("call_function", "call_method"):
            args = [val(a) for a in node.args]
            is_method = op == "call_method"
            if (not is_method and target in _BINARY) or (is_method and target in _BINARY_METHODS):
                operands = [val(a) if isinstance(a, fx.Node) and isinstance(val(a), _Chan) else a
                            for a in node.args]
                env[node] = elementwise(node, operands)
            elif (not is_method and target in _UNARY) or (is_method and target in _UNARY_METHODS):
                x = args[0] if args else val(node.kwargs.get("input"))
                if isinstance(x, _Chan) and _channels(node) == len(x.ids):
                    env[node] = x
                else:
                    env[node] = fallback(node, f"{node.name}: channel count changed")
            elif not is_method and target is F.pad:
                x, pad = args[0], _arg(node, 1, "pad")
                if isinstance(x, _Chan) and len(pad) <= 4:
                    env[node] = x
                else:
                    env[node] = fallback(node, f"{node.name}: pad over channels")
            elif (is_method and target in _REDUCE_METHODS) or (not is_method and target in _REDUCE_FUNCS):
                x = args[0]
                dim = _norm_dim(_arg(node, 1, "dim"))
                dims = dim if isinstance(dim, tuple) else (dim,)
                if isinstance(x, _Chan) and dim is not None and 1 not in dims and _channels(node) == len(x.ids):
                    env[node] = x
                else:
                    env[node] = fallback(node, f"{node.name}: reduction over channels")
            elif not is_method and target is torch.cat:
                tensors = [val(a) for a in _arg(node, 0, "tensors")]
                dim = _norm_dim(_arg(node, 1, "dim", 0))
                if all(isinstance(c, _Chan) for c in tensors) and dim == 1:
                    env[node] = _Chan([i for c in tensors for i in c.ids])
                elif all(isinstance(c, _Chan) for c in tensors) and dim in (2, 3):
                    for c in tensors[1:]:
                        t.join(tensors[0], c)
                    env[node] = tensors[0]
                else:
                    env[node] = fallback(node, f"{node.name}: cat")
            elif ((not is_method and target in (torch.split, torch.chunk))
                  or (is_method and target in ("split", "chunk"))):
                # Sizes are constants in forward: the channels keep their count.
                t.lock(args[0], f"{node.name}: {target if is_method else target.__name__} over channels")
                shapes = _meta_shapes(node)
                env[node] = _Tuple([t.new(s[1], locked=True) if s is not None and len(s) == 4 else None
                                    for s in (shapes or [])])
            elif not is_method and target is operator.getitem:
                src, index = args[0], node.args[1]
                if isinstance(src, _Tuple) and isinstance(index, int):
                    env[node] = src.items[index]
                elif isinstance(src, _Chan):
                    env[node] = fallback(node, f"{node.name}: indexing")
                else:
                    env[node] = None
            elif is_method and target in ("size", "dim"):
                env[node] = None
            elif not is_method and target is getattr:
                env[node] = None if not isinstance(args[0], _Chan) else fallback(node, f"{node.name}: getattr")
            else:
                what = target if isinstance(target, str) else getattr(target, "__name__", str(target))
                env[node] = fallback(node, f"{node.name}: {what} not understood")
        else:  # pragma: no cover - fx has no other opcodes
            env[node] = fallback(node, f"{node.name}: opcode {op}")

    # A module's channel k is one channel wherever the module is called (shared modules, e.g. RLFB's act is fine,
    # but a conv called twice must be pruned the same way both times).
    first_by_role: dict[Role, int] = {}
    for i, roles in t.roles.items():
        for r in roles:
            if r in first_by_role:
                t.union(first_by_role[r], i)
            else:
                first_by_role[r] = i

    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(t.parent)):
        comps[t.find(i)].append(i)
    locked_roots = {t.find(i) for i in t.locked}

    grouped: dict[tuple[tuple[str, str], ...], list[tuple[int, Channel]]] = {}
    first_producer: dict[tuple[tuple[str, str], ...], int] = {}
    for root, ids in comps.items():
        if root in locked_roots:
            continue
        roles = sorted({r for i in ids for r in t.roles.get(i, [])})
        if not any(r[1] == "out" for r in roles):
            continue
        sig = tuple(sorted({(p, k) for p, k, _ in roles}))
        produced_at = min(i for i in ids for r in t.roles.get(i, []) if r[1] == "out")
        grouped.setdefault(sig, []).append((produced_at, Channel(roles)))
        first_producer[sig] = min(first_producer.get(sig, produced_at), produced_at)

    groups = []
    for sig in sorted(grouped, key=lambda s: first_producer[s]):
        members = sorted(grouped[sig], key=lambda pc: pc[0])
        # Name: the producer whose output channels were created first (execution order).
        name = next(r[0] for r in t.roles[first_producer[sig]] if r[1] == "out")
        groups.append(ChannelGroup(name, [c for _, c in members], sig))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):  # two groups produced by one module (a conv whose output is split): number them
        seen: dict[str, int] = defaultdict(int)
        for g in groups:
            seen[g.name] += 1
            if names.count(g.name) > 1:
                g.name = f"{g.name}#{seen[g.name]}"
    return ChannelGraph(groups, t.reasons)
