"""Model complexity under the challenge conventions: params, MACs (2022 counter and fvcore), activations, #conv.

Every count is a plain function of ``(model, input_shape)`` and runs on whatever device the model lives on (counts do
not depend on it); the input is ``torch.rand`` with a fixed seed, default ``1×3×256×256`` (the challenge shape).

Conventions (see ``shared/docs/protocols.md`` §1.1; checked against the official harness's ``utils/model_summary.py``):

``macs_ntire2022`` (NTIRE 2022/2023; a forward hook on each module, summed over every forward call, so a module used
twice counts twice):

* ``nn.Conv2d`` / ``nn.ConvTranspose2d`` (and subclasses): ``k_h·k_w·C_in·(C_out // groups)·N·H_out·W_out``; bias not
  counted. For a transposed conv this is the *output* size, i.e. ``stride²`` times the true MACs that fvcore and torch
  count (they use the input size): the official counter's quirk, kept on purpose.
* ``nn.ReLU``, ``nn.PReLU``, ``nn.ELU``, ``nn.LeakyReLU``, ``nn.ReLU6`` modules: ``output.numel()``.
* ``nn.BatchNorm2d``: ``N·C·H·W``, doubled when ``affine``.
* ``nn.Linear``: ``input.shape[0]·input.shape[1]·output.shape[1]`` (``in·out`` per row for a 2-D input, ``in·out`` for
  1-D); for inputs of more than two dimensions the official formula is kept as is (it then ignores the last dims) and a
  warning is added.
* everything else counts 0 (``nn.Conv1d``/``nn.Conv3d``, GELU, SiLU, Sigmoid, pooling, upsampling, ...), and functional
  calls (``F.conv2d``, ``F.relu``, ``torch.matmul``) are invisible.

``macs_fvcore`` (NTIRE 2024 on): ``fvcore.nn.FlopCountAnalysis(model, x).total()`` (MACs; counts bilinear upsampling as
4 per output element, activations as 0, and sees functional ops because it traces).

``activations_and_convs``: ``Σ output.numel()`` over every forward call of ``nn.Conv2d``/``nn.ConvTranspose2d`` modules,
and the number of such calls.

Two checks come with :func:`count`: the fvcore MACs against ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
MAC) per operator family, and a detector of convolutions the challenge counters cannot see (``aten.convolution`` calls
that do not come from a ``Conv2d``/``ConvTranspose2d`` module call, e.g. a re-parameterizable block merging its
branches with ``F.conv2d``). Their findings go to ``Counts.warnings``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ntirekit.core.errors import NtirekitError
from ntirekit.graph.kinds import ACT_TYPES, CONV_TYPES

#: The challenge's input shape for every count.
DEFAULT_SHAPE: tuple[int, int, int, int] = (1, 3, 256, 256)

#: aten convolution ops (any one of them is a convolution executed by the model).
_ATEN_CONV = {"convolution", "_convolution", "conv2d", "conv1d", "conv3d", "conv_transpose2d", "cudnn_convolution",
              "cudnn_convolution_transpose", "mkldnn_convolution", "_convolution_mode"}

#: fvcore operator name -> family compared with torch's FlopCounterMode.
_FVCORE_FAMILY = {"conv": "conv", "linear": "matmul", "matmul": "matmul", "mm": "matmul", "addmm": "matmul",
                  "bmm": "matmul", "einsum": "matmul", "baddbmm": "matmul"}
#: torch FlopCounterMode operator name -> family.
_TORCH_FAMILY = {"convolution": "conv", "_convolution": "conv", "cudnn_convolution": "conv",
                 "cudnn_convolution_transpose": "conv", "convolution_backward": "conv",
                 "mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul"}
#: Operators fvcore counts and torch does not: a known, expected difference (not a warning).
FVCORE_ONLY_KNOWN = {"upsample_bilinear2d", "upsample_nearest2d", "upsample_bicubic2d", "batch_norm", "group_norm",
                     "layer_norm", "instance_norm", "adaptive_avg_pool2d", "grid_sampler"}


class CountError(NtirekitError, RuntimeError):
    """A model that cannot be counted (its forward fails on the counting input)."""


@dataclass
class Counts:
    """Everything the challenges count, on one input shape. MACs are multiply-accumulates (the tables' "FLOPs")."""

    input_shape: tuple[int, ...]
    params: int
    macs_ntire2022: int
    macs_fvcore: int | None
    activations: int
    convs: int
    activations_fvcore: int | None
    flops_torch: int | None = None            # FlopCounterMode total (2 per MAC)
    functional_convs: int = 0                 # aten convolutions the challenge counters cannot see
    #: the 2022 counter's conv rules applied to those convolutions (graph counts only; None where not measured)
    macs_ntire2022_missed: int | None = None
    activations_missed: int | None = None
    convs_missed: int | None = None
    fvcore_by_operator: dict[str, int] = field(default_factory=dict)
    torch_by_operator: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    def record_fields(self) -> dict[str, Any]:
        """:meth:`to_dict` without the per-operator tables (``fvcore_by_operator``, ``torch_by_operator``): what a
        record carries."""
        return {k: v for k, v in self.to_dict().items() if k not in ("fvcore_by_operator", "torch_by_operator")}

    # Table units: params in 10^6, MACs in 10^9, activations in 10^6.
    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gmacs_ntire2022(self) -> float:
        return self.macs_ntire2022 / 1e9

    @property
    def gmacs_fvcore(self) -> float | None:
        return None if self.macs_fvcore is None else self.macs_fvcore / 1e9

    @property
    def activations_m(self) -> float:
        return self.activations / 1e6


# ---------------------------------------------------------------------------------------------------------------------
# helpers

def _shape(input_shape: Sequence[int] | None) -> tuple[int, ...]:
    shape = tuple(int(s) for s in (input_shape or DEFAULT_SHAPE))
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input shape must be positive sizes, e.g. 1,3,256,256; got {shape}")
    return shape


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def make_input(model: nn.Module, input_shape: Sequence[int] | None = None, seed: int = 0) -> torch.Tensor:
    """The counting input: ``torch.rand(shape)`` from a fixed seed, on the model's device."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(_shape(input_shape), generator=g).to(_device_of(model))


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _module_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        names.setdefault(id(mod), name or "(root)")
    return names


def conv_macs_ntire2022(module: nn.Module, output: torch.Tensor) -> int:
    """The 2022 counter's MACs of one call of a ``Conv2d``/``ConvTranspose2d`` producing ``output``."""
    k = 1
    for s in module.kernel_size:
        k *= int(s)
    per_position = k * int(module.in_channels) * (int(module.out_channels) // int(module.groups))
    active = int(output.shape[0])
    for s in output.shape[2:]:
        active *= int(s)
    return per_position * active


def linear_macs_ntire2022(input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """The 2022 counter's MACs of one ``nn.Linear`` call from its input's and output's shapes (its formula, quirks
    included: see :func:`linear_warning`)."""
    if len(input_shape) == 1:
        return int(input_shape[0]) * int(output_shape[0])
    return int(input_shape[0]) * int(input_shape[1]) * int(output_shape[1])


def linear_warning(name: str, input_shape: Sequence[int]) -> str:
    """The warning for ``nn.Linear`` ``name`` called on an input of more than two dimensions (the 2022 counter's
    formula then ignores its last dimensions)."""
    return (f"{name} (Linear) gets a {len(input_shape)}-D input {tuple(int(s) for s in input_shape)}: the 2022 "
            "counter's formula shape[0]*shape[1]*out.shape[1] is kept as is and does not count its true MACs")


def bn_macs_ntire2022(module: nn.BatchNorm2d, output: torch.Tensor) -> int:
    n = int(output.shape[0]) * int(module.num_features)
    for s in output.shape[2:]:
        n *= int(s)
    return 2 * n if module.affine else n


# ---------------------------------------------------------------------------------------------------------------------
# one instrumented forward pass: the 2022 hooks, activations/#conv, module stack for the functional-conv detector


class _ConvCallMode(TorchDispatchMode):
    """Counts aten convolutions and attributes each to the innermost module whose forward is running."""

    def __init__(self, stack: list[nn.Module]):
        super().__init__()
        self.stack = stack
        self.calls: list[tuple[nn.Module | None, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func)
        if name in _ATEN_CONV:
            self.calls.append((self.stack[-1] if self.stack else None, name))
        return func(*args, **(kwargs or {}))


@dataclass
class _PassResult:
    macs_ntire2022: int = 0
    activations: int = 0
    convs: int = 0
    flops_torch: int | None = None
    torch_by_operator: dict[str, int] = field(default_factory=dict)
    functional: list[str] = field(default_factory=list)      # "path (ModuleType): N call(s)"
    functional_count: int = 0
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _hooks(model: nn.Module, res: _PassResult, stack: list[nn.Module],
           conv_calls_in: dict[int, int]) -> Iterator[None]:
    names = _module_names(model)
    handles = []
    linear_nd_warned: set[str] = set()

    def pre(mod: nn.Module, _inp: Any) -> None:
        stack.append(mod)

    def post(mod: nn.Module, inp: Any, out: Any) -> None:
        if stack and stack[-1] is mod:
            stack.pop()
        o = _first_tensor(out)
        if o is None:
            return
        if isinstance(mod, CONV_TYPES):
            res.macs_ntire2022 += conv_macs_ntire2022(mod, o)
            res.activations += o.numel()
            res.convs += 1
            conv_calls_in[id(mod)] = conv_calls_in.get(id(mod), 0) + 1
        elif isinstance(mod, ACT_TYPES):
            res.macs_ntire2022 += o.numel()
        elif isinstance(mod, nn.Linear):
            i = _first_tensor(inp)
            if i is not None:
                res.macs_ntire2022 += linear_macs_ntire2022(i.shape, o.shape)
                if i.dim() > 2 and names[id(mod)] not in linear_nd_warned:
                    linear_nd_warned.add(names[id(mod)])
                    res.warnings.append(linear_warning(names[id(mod)], i.shape))
        elif isinstance(mod, nn.BatchNorm2d):
            res.macs_ntire2022 += bn_macs_ntire2022(mod, o)

    for mod in {id(m): m for m in model.modules()}.values():
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post, always_call=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _meta_copy(model: nn.Module) -> nn.Module | None:
    """A copy of ``model`` on the meta device (shapes only, no compute), or None when it cannot be made."""
    try:
        return copy.deepcopy(model).to("meta")
    except Exception:
        return None


def _instrumented_pass(model: nn.Module, input_shape: Sequence[int] | None, torch_flops: bool = True,
                       detect: bool = True, meta: bool = True) -> _PassResult:
    """One forward with the 2022 hooks (+ FlopCounterMode and the functional-conv detector when asked).

    With ``meta=True`` the pass runs on a meta-device copy first (every count here depends on shapes only, and the
    meta pass costs no arithmetic); a model whose forward needs real values (``.item()``, data-dependent shapes)
    falls back to a real forward.
    """
    if meta and _device_of(model).type != "meta":
        copy_ = _meta_copy(model)
        if copy_ is not None:
            try:
                return _instrumented_pass(copy_, input_shape, torch_flops, detect, meta=False)
            except Exception:
                pass
    x = make_input(model, input_shape)
    res = _PassResult()
    stack: list[nn.Module] = []
    conv_calls_in: dict[int, int] = {}
    mode = _ConvCallMode(stack) if detect else None
    flop_mode = None
    with contextlib.ExitStack() as es:
        es.enter_context(torch.no_grad())
        es.enter_context(_hooks(model, res, stack, conv_calls_in))
        if torch_flops:
            from torch.utils.flop_counter import FlopCounterMode

            flop_mode = es.enter_context(FlopCounterMode(display=False))
        if mode is not None:
            es.enter_context(mode)
        try:
            model(x)
        except Exception as exc:
            raise CountError(f"forward on {tuple(x.shape)} failed: {type(exc).__name__}: {exc}") from exc
    if flop_mode is not None:
        res.flops_torch = int(flop_mode.get_total_flops())
        glob = flop_mode.get_flop_counts().get("Global", {})
        res.torch_by_operator = {getattr(k, "__name__", str(k)).split(".")[-1]: int(v) for k, v in glob.items()}
    if mode is not None:
        res.functional, res.functional_count = _invisible_convs(model, mode.calls, conv_calls_in)
        if res.functional_count:
            res.warnings.append(
                f"{res.functional_count} convolution call(s) are not nn.Conv2d/nn.ConvTranspose2d module calls and are "
                f"invisible to the challenge counters (2022 MACs, activations, #conv): {'; '.join(res.functional)}. "
                f"Convert the model to plain convs (reparameterize) before counting.")
    return res


def _invisible_convs(model: nn.Module, calls: list[tuple[nn.Module | None, str]],
                     conv_calls_in: dict[int, int]) -> tuple[list[str], int]:
    """aten convolutions not accounted for by one Conv2d/ConvTranspose2d module call each, grouped by module path."""
    names = _module_names(model)
    per_owner: Counter[int] = Counter()
    owners: dict[int, nn.Module | None] = {}
    for owner, _op in calls:
        key = id(owner) if owner is not None else 0
        per_owner[key] += 1
        owners[key] = owner
    out: list[str] = []
    total = 0
    for key, n in per_owner.items():
        owner = owners[key]
        if owner is not None and isinstance(owner, CONV_TYPES):
            extra = n - conv_calls_in.get(key, 0)      # one aten conv per module call is the counted one
        else:
            extra = n
        if extra > 0:
            total += extra
            where = "(outside any module)" if owner is None else f"{names.get(key, '?')} ({type(owner).__name__})"
            out.append(f"{where}: {extra} call(s)")
    return out, total


# ---------------------------------------------------------------------------------------------------------------------
# public counting functions

def params(model: nn.Module) -> int:
    """``sum(p.numel() for p in model.parameters())`` (shared parameters once, as ``parameters()`` yields them)."""
    return sum(p.numel() for p in model.parameters())


def macs_ntire2022(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> int:
    """MACs under the NTIRE 2022/2023 hook counter's rules (module docstring)."""
    return _instrumented_pass(model, input_shape, torch_flops=False, detect=False).macs_ntire2022


def activations_and_convs(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> tuple[int, int]:
    """``(Σ output.numel(), number of calls)`` over every forward call of ``Conv2d``/``ConvTranspose2d`` modules."""
    res = _instrumented_pass(model, input_shape, torch_flops=False, detect=False)
    return res.activations, res.convs


def functional_convs(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> tuple[int, list[str]]:
    """Convolutions the challenge counters cannot see: ``(count, ["module.path (Type): N call(s)", ...])``."""
    res = _instrumented_pass(model, input_shape, torch_flops=False, detect=True)
    return res.functional_count, res.functional


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence fvcore's and torch.jit's warnings and log lines while tracing."""
    loggers = [logging.getLogger(n) for n in ("fvcore", "fvcore.nn.jit_analysis", "torch.jit")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _fvcore(analysis_cls: type, model: nn.Module, input_shape: Sequence[int] | None) -> Any:
    x = make_input(model, input_shape)
    with _quiet(), torch.no_grad():
        analysis = analysis_cls(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        analysis.total()  # runs the trace inside the quiet block
    return analysis


def _fvcore_nn() -> Any:
    with _quiet():  # importing fvcore.nn scripts a few functions (torch.jit.script deprecation warnings)
        import fvcore.nn
    return fvcore.nn


def fvcore_analysis(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> Any:
    """The ``fvcore.nn.FlopCountAnalysis`` of ``model`` (already traced, warnings silenced)."""
    FlopCountAnalysis = _fvcore_nn().FlopCountAnalysis

    return _fvcore(FlopCountAnalysis, model, input_shape)


def macs_fvcore(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> int:
    """``fvcore.nn.FlopCountAnalysis(model, torch.rand(shape)).total()``: MACs, the NTIRE 2024-on convention."""
    return int(fvcore_analysis(model, input_shape).total())


def activations_fvcore(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> int:
    """``fvcore.nn.ActivationCountAnalysis(...).total()`` (outputs of convs and matmuls, traced)."""
    return int(_fvcore(_fvcore_nn().ActivationCountAnalysis, model, input_shape).total())


def _prefixed(prefix: str, kind: str, handle: Any) -> Any:
    """An fvcore op handle whose counts come back keyed ``prefix + simplified op name``."""
    op = kind[kind.find("::") + 2:] if "::" in kind else kind

    def counted(inputs: Any, outputs: Any) -> Counter[str]:
        value = handle(inputs, outputs)
        if isinstance(value, dict):
            return Counter({prefix + k: v for k, v in value.items()})
        return Counter({prefix + op: value})
    return counted


def _joined(handles: list[Any]) -> Any:
    def counted(inputs: Any, outputs: Any) -> Counter[str]:
        out: Counter[str] = Counter()
        for h in handles:
            out.update(h(inputs, outputs))
        return out
    return counted


def fvcore_counts(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE) -> tuple[int, dict[str, int], int]:
    """fvcore's MACs, its MACs per operator and its activations from **one** trace: ``(macs, by_operator, acts)``.

    The op handles of ``FlopCountAnalysis`` and ``ActivationCountAnalysis`` are run side by side on the nodes of a
    single traced graph, so the figures are those of the two analyses (:func:`macs_fvcore`,
    :func:`activations_fvcore`) at the cost of one trace instead of two.
    """
    fv = _fvcore_nn()
    from fvcore.nn.jit_analysis import JitModelAnalysis

    x = make_input(model, input_shape)
    per_kind: dict[str, list[Any]] = defaultdict(list)
    for prefix, cls in (("macs/", fv.FlopCountAnalysis), ("acts/", fv.ActivationCountAnalysis)):
        for kind, handle in cls(model, x)._op_handles.items():     # fvcore's default handles (built, not traced)
            if handle is not None:
                per_kind[kind].append(_prefixed(prefix, kind, handle))
    with _quiet(), torch.no_grad():
        analysis = JitModelAnalysis(model, x).set_op_handle(**{k: _joined(v) for k, v in per_kind.items()})
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        totals = analysis.by_operator()
    macs = {k[len("macs/"):]: int(v) for k, v in totals.items() if k.startswith("macs/")}
    acts = sum(int(v) for k, v in totals.items() if k.startswith("acts/"))
    return sum(macs.values()), macs, acts


def compare_fvcore_torch(fvcore_ops: dict[str, int], torch_ops: dict[str, int]) -> list[str]:
    """Warnings where fvcore's MACs and torch's FlopCounterMode FLOPs (2 per MAC) disagree beyond the known
    differences (fvcore counts upsampling, norms, pooling and grid sampling; torch does not)."""
    fam_fv: dict[str, int] = defaultdict(int)
    fam_fv_ops: dict[str, list[str]] = defaultdict(list)
    out: list[str] = []
    for op, macs in fvcore_ops.items():
        fam = _FVCORE_FAMILY.get(op)
        if fam is not None:
            fam_fv[fam] += int(macs)
            fam_fv_ops[fam].append(op)
        elif op not in FVCORE_ONLY_KNOWN and macs:
            out.append(f"fvcore counts {op} ({macs} MACs) which torch's FlopCounterMode does not")
    fam_t: dict[str, int] = defaultdict(int)
    fam_t_ops: dict[str, list[str]] = defaultdict(list)
    for op, flops in torch_ops.items():
        fam = _TORCH_FAMILY.get(op)
        if fam is None:
            if flops:
                out.append(f"torch's FlopCounterMode counts aten.{op} ({flops // 2} MACs) which fvcore does not")
            continue
        fam_t[fam] += int(flops)
        fam_t_ops[fam].append(op)
    for fam in sorted(set(fam_fv) | set(fam_t)):
        fv, tm = fam_fv.get(fam, 0), fam_t.get(fam, 0)
        if 2 * fv != tm:
            out.append(f"{fam} MACs differ: fvcore {fv} ({'+'.join(sorted(fam_fv_ops[fam])) or 'none'}) vs "
                       f"torch {tm / 2:.0f} ({'+'.join('aten.' + o for o in sorted(fam_t_ops[fam])) or 'none'})")
    return out


def count(model: nn.Module, input_shape: Sequence[int] | None = DEFAULT_SHAPE, *, fvcore: bool = True,
          cross_check: bool = True) -> Counts:
    """Every count at once, with the invisible-convolution detector's findings (and, with ``cross_check``, the
    fvcore-vs-torch per-operator cross-check's) as warnings.

    Cost: one instrumented pass (on a meta-device copy: shapes only, no arithmetic; a real forward only for models
    whose forward needs values) for params, the 2022 MACs, activations, #conv and the detector (``cross_check`` adds
    torch's FlopCounterMode to that same pass), plus one fvcore trace shared by its MACs and its activations
    (:func:`fvcore_counts`). The model is put in eval mode for the count and restored afterwards.
    """
    shape = _shape(input_shape)
    was_training = model.training
    model.eval()
    try:
        res = _instrumented_pass(model, shape, torch_flops=cross_check, detect=True)
        notes = list(res.warnings)
        m_fv = a_fv = None
        by_op: dict[str, int] = {}
        if fvcore:
            try:
                m_fv, by_op, a_fv = fvcore_counts(model, shape)
            except Exception as exc:  # a model fvcore cannot trace: say so, keep the other counts
                notes.append(f"fvcore could not trace the model: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        if cross_check and m_fv is not None:
            notes += [f"fvcore vs torch FlopCounterMode: {w}" for w in compare_fvcore_torch(by_op, res.torch_by_operator)]
    finally:
        model.train(was_training)
    return Counts(input_shape=shape, params=params(model), macs_ntire2022=res.macs_ntire2022, macs_fvcore=m_fv,
                  activations=res.activations, convs=res.convs, activations_fvcore=a_fv, flops_torch=res.flops_torch,
                  functional_convs=res.functional_count, fvcore_by_operator=by_op,
                  torch_by_operator=res.torch_by_operator, warnings=notes)
