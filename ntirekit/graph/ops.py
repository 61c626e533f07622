"""The operators a graph file may call: an explicit allowlist, and the one place a name becomes a callable.

A graph file names each call target as text: an ATen/prims operator overload (``"aten.conv2d.default"``) or one of a
few Python functions that size arithmetic in exported programs uses (``"operator.mul"``). :func:`resolve` turns a
name on :data:`ATEN_OPS` or :data:`PYTHON_OPS` into its callable and refuses every other name; nothing else is ever
looked up by name (no ``getattr`` walk over a name from a file, no import). The list holds the deterministic tensor
operators restoration networks use (convolutions, activations, elementwise arithmetic, reductions, pooling, resizing,
normalisation, shape and view operators, FFTs, size queries and the assertions ``torch.export`` inserts); random
number generators, in-place writes into the inputs, I/O and higher-order operators (control flow, ``wrap``) are not on
it. A network that needs another operator is "not exportable" until the operator is reviewed and added here.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch

from ntirekit.graph.errors import GraphError

#: ``namespace.op.overload`` names of the tensor operators a graph may call.
ATEN_OPS: frozenset[str] = frozenset(f"aten.{name}" for name in """
    conv1d.default conv2d.default conv3d.default conv2d.padding conv1d.padding convolution.default
    _convolution.default conv_transpose1d.default conv_transpose2d.input conv_transpose3d.input
    linear.default addmm.default mm.default bmm.default matmul.default baddbmm.default einsum.default
    addmv.default mv.default dot.default outer.default
    relu.default relu_.default leaky_relu.default leaky_relu_.default prelu.default _prelu_kernel.default
    elu.default elu_.default celu.default selu.default gelu.default gelu_.default silu.default silu_.default
    sigmoid.default sigmoid_.default tanh.default tanh_.default hardtanh.default hardtanh_.default relu6.default
    hardswish.default hardswish_.default hardsigmoid.default hardsigmoid_.default mish.default mish_.default
    softplus.default logsigmoid.default glu.default threshold.default softmax.int _softmax.default
    log_softmax.int _log_softmax.default
    add.Tensor add.Scalar add_.Tensor add_.Scalar sub.Tensor sub.Scalar sub_.Tensor sub_.Scalar rsub.Tensor
    rsub.Scalar mul.Tensor mul.Scalar mul_.Tensor mul_.Scalar div.Tensor div.Scalar div.Tensor_mode
    div.Scalar_mode div_.Tensor div_.Scalar floor_divide.default remainder.Tensor remainder.Scalar fmod.Tensor
    fmod.Scalar pow.Tensor_Scalar pow.Tensor_Tensor pow.Scalar sqrt.default rsqrt.default exp.default log.default
    log2.default log10.default log1p.default expm1.default abs.default neg.default reciprocal.default sign.default
    floor.default ceil.default round.default round.decimals trunc.default frac.default sin.default cos.default
    tan.default atan.default atan2.default asin.default acos.default sinh.default cosh.default erf.default
    erfc.default clamp.default clamp.Tensor clamp_.default clamp_min.default clamp_max.default maximum.default
    minimum.default where.self where.ScalarOther where.ScalarSelf where.Scalar lerp.Scalar lerp.Tensor
    addcmul.default addcdiv.default square.default hypot.default nan_to_num.default
    eq.Tensor eq.Scalar ne.Tensor ne.Scalar gt.Tensor gt.Scalar lt.Tensor lt.Scalar ge.Tensor ge.Scalar le.Tensor
    le.Scalar logical_and.default logical_or.default logical_not.default logical_xor.default bitwise_and.Tensor
    bitwise_or.Tensor bitwise_not.default isnan.default isinf.default
    mean.dim mean.default sum.dim_IntList sum.default prod.default prod.dim_int amax.default amin.default max.dim
    min.dim max.default min.default argmax.default argmin.default var.correction var.dim var_mean.correction
    std.correction std.dim std_mean.correction norm.ScalarOpt_dim norm.Scalar linalg_vector_norm.default
    logsumexp.default cumsum.default all.default any.default topk.default sort.default
    max_pool2d.default max_pool2d_with_indices.default max_pool1d.default max_pool3d.default avg_pool2d.default
    avg_pool1d.default avg_pool3d.default adaptive_avg_pool2d.default _adaptive_avg_pool2d.default
    adaptive_avg_pool1d.default adaptive_avg_pool3d.default adaptive_max_pool2d.default
    upsample_bilinear2d.vec upsample_bilinear2d.default upsample_nearest2d.vec upsample_nearest2d.default
    upsample_bicubic2d.vec upsample_bicubic2d.default upsample_nearest1d.vec upsample_linear1d.vec
    upsample_nearest3d.vec upsample_trilinear3d.vec _upsample_bilinear2d_aa.default _upsample_bicubic2d_aa.default
    _upsample_nearest_exact2d.vec grid_sampler.default grid_sampler_2d.default affine_grid_generator.default
    pixel_shuffle.default pixel_unshuffle.default
    batch_norm.default _native_batch_norm_legit_no_training.default native_batch_norm.default
    _native_batch_norm_legit.no_stats layer_norm.default native_layer_norm.default group_norm.default
    native_group_norm.default instance_norm.default rms_norm.default _weight_norm.default
    _weight_norm_interface.default
    view.default reshape.default _unsafe_view.default permute.default transpose.int t.default contiguous.default
    clone.default expand.default expand_as.default repeat.default repeat_interleave.self_int
    repeat_interleave.self_Tensor repeat_interleave.Tensor squeeze.dim squeeze.dims squeeze.default
    unsqueeze.default flatten.using_ints unflatten.int split.Tensor split_with_sizes.default chunk.default
    unbind.int cat.default stack.default narrow.default slice.Tensor select.int index.Tensor index_select.default
    gather.default roll.default flip.default pad.default constant_pad_nd.default reflection_pad1d.default
    reflection_pad2d.default reflection_pad3d.default replication_pad1d.default replication_pad2d.default
    replication_pad3d.default unfold.default im2col.default col2im.default tile.default movedim.int
    alias.default detach.default detach_.default lift_fresh_copy.default meshgrid.default meshgrid.indexing
    _to_copy.default to.dtype to.dtype_layout to.device
    type_as.default copy.default slice_scatter.default select_scatter.default index_put.default masked_fill.Scalar
    masked_fill.Tensor masked_fill_.Scalar zeros_like.default ones_like.default full_like.default empty_like.default
    zeros.default ones.default full.default empty.memory_format new_zeros.default new_ones.default
    new_full.default new_empty.default arange.default arange.start arange.start_step linspace.default
    scalar_tensor.default fill.Scalar fill_.Scalar fill.Tensor tril.default triu.default diag.default eye.default
    view_as_real.default view_as_complex.default complex.default real.default imag.default angle.default
    fft_fft2.default fft_ifft2.default fft_rfft2.default fft_irfft2.default fft_fftn.default fft_ifftn.default
    fft_rfftn.default fft_irfftn.default fft_rfft.default fft_irfft.default _fft_r2c.default _fft_c2r.default
    _fft_c2c.default fft_fftshift.default fft_ifftshift.default
    dropout.default feature_dropout.default native_dropout.default
    sym_size.int sym_numel.default sym_stride.int _assert_tensor_metadata.default _assert_scalar.default
    sym_constrain_range_for_size.default sym_constrain_range.default _assert_async.msg
""".split())

#: Python functions of exported programs' size arithmetic (on plain ints when the graph runs).
PYTHON_OPS: dict[str, Callable[..., Any]] = {
    "operator.getitem": operator.getitem, "operator.add": operator.add, "operator.sub": operator.sub,
    "operator.mul": operator.mul, "operator.floordiv": operator.floordiv, "operator.truediv": operator.truediv,
    "operator.mod": operator.mod, "operator.neg": operator.neg, "operator.pow": operator.pow,
    "operator.eq": operator.eq, "operator.ne": operator.ne, "operator.lt": operator.lt, "operator.le": operator.le,
    "operator.gt": operator.gt, "operator.ge": operator.ge, "math.ceil": math.ceil, "math.floor": math.floor,
    "math.sqrt": math.sqrt, "torch.sym_float": torch.sym_float, "torch.sym_int": torch.sym_int,
    "torch.sym_max": torch.sym_max, "torch.sym_min": torch.sym_min, "torch.sym_not": torch.sym_not,
}

#: operators that read no tensor and compute a size or assert something: left out of traces and digests
SIZE_OPS: frozenset[str] = frozenset({
    "aten.sym_size.int", "aten.sym_numel.default", "aten.sym_stride.int", "aten._assert_tensor_metadata.default",
    "aten._assert_scalar.default", "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default",
    "aten._assert_async.msg", *PYTHON_OPS})


def target_name(target: Any) -> str:
    """The file name of an exported program's call target (``"aten.conv2d.default"``, ``"operator.mul"``)."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    module = getattr(target, "__module__", "") or ""
    name = f"{module.lstrip('_')}.{getattr(target, '__name__', '?')}"
    if module in ("_operator", "operator"):
        name = f"operator.{target.__name__}"
    elif module.startswith("torch"):
        name = f"torch.{target.__name__}"
    return name


def is_allowed(name: str) -> bool:
    """Whether a graph may call ``name``."""
    return name in ATEN_OPS or name in PYTHON_OPS


def resolve(name: str) -> Callable[..., Any]:
    """The callable of an allowed target name; :class:`GraphError` for any other name."""
    if name in PYTHON_OPS:
        return PYTHON_OPS[name]
    if name not in ATEN_OPS:
        raise GraphError(f"operator {name[:120]!r} is outside the kit's allowlist")
    namespace, op, overload = name.split(".")
    packet = getattr(torch.ops.aten, op, None)
    target = getattr(packet, overload, None) if packet is not None else None
    if not isinstance(target, torch._ops.OpOverload):
        raise GraphError(f"operator {name!r} does not exist in this torch ({torch.__version__})")
    return target
