"""The kit's graph interchange format: what an exported network is on the wire, and its limits.

A graph file is ``MAGIC`` (8 bytes), the format version (4 bytes, little endian), the header's length (8 bytes,
little endian), the header (UTF-8 JSON) and the tensor data (raw little-endian, C-contiguous bytes, one tensor after
another). The header::

    {"format": "ntirekit-graph", "version": 1, "torch": "2.13.0",
     "tensors": [{"dtype": "float32", "shape": [46, 3, 3, 3], "offset": 0, "nbytes": 4968}, ...],
     "modules": {"conv_1": "conv", "block_1.act": "act", ...},
     "programs": [{
        "inputs": [{"name": "x", "dtype": "float32", "dims": [1, 3, [32, 4096, 1], [32, 4096, 1]]}],
        "state": [{"name": "p_conv_1_weight", "tensor": 0, "label": "parameter"}, ...],
        "nodes": [{"name": "conv2d", "target": "aten.conv2d.default", "args": [{"ref": "x"}, {"ref": "p_conv_1_weight"}],
                   "kwargs": {}, "stack": [["conv_1", "torch.nn.modules.conv.Conv2d"]]}, ...],
        "outputs": [{"ref": "pixel_shuffle"}]}, ...]}

``programs`` holds one program when the network exports with dynamic height and width, else one static program per
input size (per call: a video model called with keyword arguments, e.g. PQF positions, gets one static program per
distinct call, whose ``"call"`` object holds those arguments: integers, lists of integers, null). ``dims`` says which
input shapes a program was exported for: an int, or ``[min, max, multiple]``.
``state`` binds a program's non-input placeholders to ``tensors`` (shared between programs) with the label the
exporter gave them (``parameter``, ``buffer``, ``constant``: written by the exporting process, so never trusted for a
count, see :mod:`ntirekit.measure.graph_counts`). ``modules`` says what each module path counts as under the NTIRE
2022 counter (``conv``, ``act``, ``bn``, ``linear``), as the exporter saw it; ``stack`` is a node's module path from
the outermost module in. Argument values (:data:`LITERAL_TAGS`): JSON null, booleans, integers, floats and lists as
themselves; ``{"ref": name}`` (a placeholder or an earlier node), ``{"float": "inf" | "-inf" | "nan"}``,
``{"str": text}``, ``{"dtype": name}``, ``{"device": name}``, ``{"layout": name}``, ``{"memory_format": name}`` and
``{"slice": [start, stop, step]}``. Any other key, at any level, makes the file refused.
"""

from __future__ import annotations

import struct

import torch

MAGIC = b"NTKGRAPH"
VERSION = 1
FORMAT = "ntirekit-graph"
#: ``MAGIC``, version (uint32) and header length (uint64), little endian
PREFIX = struct.Struct("<8sIQ")

#: the largest header a reader accepts [bytes]
MAX_HEADER_BYTES = 64 * 2**20
#: the most tensor data a reader accepts [bytes] (8 GiB; a run's own limit is usually lower)
MAX_TENSOR_BYTES = 8 * 2**30
MAX_NODES = 200_000
MAX_PROGRAMS = 512
MAX_TENSORS = 100_000
MAX_RANK = 8
MAX_TEXT = 256
MAX_STACK = 64
#: the largest size a dimension may declare
MAX_DIM = 2**31 - 1

#: dtype name -> torch dtype, for tensors and dtype literals
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
    "complex64": torch.complex64, "complex128": torch.complex128, "int64": torch.int64, "int32": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
LAYOUTS: dict[str, torch.layout] = {"strided": torch.strided}
MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous_format": torch.contiguous_format, "channels_last": torch.channels_last,
    "channels_last_3d": torch.channels_last_3d, "preserve_format": torch.preserve_format}
#: the one-key objects an argument may be
LITERAL_TAGS = ("ref", "float", "str", "dtype", "device", "layout", "memory_format", "slice")
#: what a module path may count as under the 2022 counter
MODULE_KINDS = ("conv", "act", "bn", "linear")
LABELS = ("parameter", "buffer", "constant")
