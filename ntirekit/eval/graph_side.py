"""The organizer's side of a measurement: an exported graph, run and measured by the kit's own code only.

:class:`GraphModel` is an ``nn.Module`` over a vetted graph (:func:`ntirekit.graph.read.read_graph`): its forward runs
the program exported for the input's shape, so the harness (tiles, conversions) runs it exactly as it runs the eager
model. :class:`GraphRunner` gives the outputs the graph makes for the scored inputs (to compare with the entry's own,
:func:`compare_outputs`), its counts (:func:`ntirekit.measure.graph_counts.count_graph`), its identity
(:func:`ntirekit.graph.identity.graph_id`) and its peak memory. For an untrusted entry's graph it runs in a jail of its
own that holds no team code (:func:`serve`: a hostile graph that tries to exhaust memory or time ends that jail, not
the organizer's run); the figures it returns are the kit's, computed on the graph.

Messages :func:`serve` answers: ``array`` (an LR image; reply: the graph's output), ``figures`` (``input_shape``,
``fvcore``, ``cross_check``; reply: ``figures`` with the counts and ``graph_id``), ``memory`` (the same images as
``array`` messages follow, ``count`` of them; reply: ``memory``), ``end``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ntirekit.core.device import resolve_device
from ntirekit.eval.pipeline import memory_of, to_inputs
from ntirekit.eval.producer import ClipHarness, Harness, answer_clip
from ntirekit.graph.identity import example_shape, graph_id, structure_id
from ntirekit.graph.read import Graph, read_graph
from ntirekit.jail.channel import Channel, image_of
from ntirekit.measure.counts import fvcore_counts, make_input
from ntirekit.measure.graph_counts import count_graph, params_of, program_input

#: uint8 outputs of the graph and of the entry may differ by one level on at most this share of their values (float
#: rounding between two processes can flip a value that sits on .5); anything more is another network
FLIP_SHARE = 1e-4
#: the most bytes a graph file may hold (1 GiB: the largest baseline's graph is a few MiB, a video model's tens)
MAX_GRAPH_BYTES = 2**30
#: the counting input of image entries
COUNT_SHAPE = (1, 3, 256, 256)


class GraphModel(nn.Module):
    """An ``nn.Module`` whose forward runs ``graph``'s program for the input's shape."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.programs = nn.ModuleList(p.module for p in graph.programs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph.program_for(tuple(x.shape)).module(x)

    def to(self, *args: Any, **kwargs: Any) -> "GraphModel":   # noqa: D102 - shared tensors move once
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            self.graph.to(device)
        return self


def counting_image(shape: Sequence[int] = COUNT_SHAPE, seed: int = 0) -> np.ndarray:
    """The RGB uint8 image of the counting shape (``1x3xHxW``) that both sides run to check the graph there."""
    return np.random.default_rng(seed).integers(0, 256, (shape[-2], shape[-1], 3), dtype=np.uint8)


def compare_outputs(entry_out: np.ndarray, graph_out: np.ndarray) -> str | None:
    """None when the graph's uint8 output equals the entry's (or differs by one level on at most
    :data:`FLIP_SHARE` of the values); else one line saying how they differ."""
    if entry_out.shape != graph_out.shape:
        return f"shapes differ ({entry_out.shape} vs {graph_out.shape})"
    diff = np.abs(entry_out.astype(np.int16) - graph_out.astype(np.int16))
    worst = int(diff.max()) if diff.size else 0
    flips = int(np.count_nonzero(diff))
    if worst == 0 or (worst == 1 and flips <= FLIP_SHARE * diff.size):
        return None
    return f"{flips} of {diff.size} values differ (by up to {worst} levels)"


class GraphRunner:
    """An exported graph with the entry's harness (see the module docstring)."""

    def __init__(self, graph: Graph, harness: Harness):
        self.harness = harness
        self.device = resolve_device(harness.device)
        self.graph = graph.to(self.device)
        self.model = GraphModel(self.graph)

    @classmethod
    def of_bytes(cls, data: bytes, harness: Harness) -> "GraphRunner":
        """Vet ``data`` (:func:`~ntirekit.graph.read.read_graph`) and wrap it."""
        return cls(read_graph(data, device="cpu", max_tensor_bytes=MAX_GRAPH_BYTES), harness)

    def run_image(self, lr: np.ndarray) -> np.ndarray:
        """The graph's RGB uint8 output for one RGB uint8 LR image, through the same harness as the entry's."""
        return self.harness.upscale(self.model, lr, self.device)

    def figures(self, input_shape: Sequence[int] = COUNT_SHAPE, fvcore: bool = True,
                cross_check: bool = False) -> dict[str, Any]:
        """The graph's counts (record fields), its identity on ``input_shape`` and how many networks its programs
        compute (``structures``: :meth:`_structures`), all on the CPU (the graph goes back to its device after)."""
        graph = self.graph.to("cpu")
        try:
            counts = count_graph(graph, input_shape, fvcore=fvcore, cross_check=cross_check)
            program = graph.program_for(tuple(input_shape))
            # the fp32 counting input as it is (not program_input): graph_id stays the value records already carry
            identity = graph_id(program, make_input(program.module, input_shape))
            structures = self._structures()
        finally:
            graph.to(self.device)
        return {**counts.record_fields(), "graph_id": identity, "structures": structures}

    def _structures(self) -> int:
        """How many different networks the graph's programs compute (:func:`ntirekit.graph.identity.structure_id`,
        each program run once at a size it was exported for, where the graph is now): 1 for one network."""
        if len(self.graph.programs) == 1:
            return 1
        return len({structure_id(p, program_input(p, example_shape(p))) for p in self.graph.programs})

    def memory(self, images: Sequence[np.ndarray]) -> dict[str, Any]:
        """Peak memory of the graph over ``images`` (:func:`ntirekit.eval.pipeline.memory_of`)."""
        return memory_of(self.model, to_inputs(images, self.harness.data_range, "cpu"), self.device)


def _load(channel: Channel, graph_bytes: int, make: Callable[[bytes], Any]) -> Any:
    """Receive the graph file (at most ``graph_bytes``), vet and wrap it with ``make``, say how many programs."""
    header, data = channel.receive(payload_limit=min(graph_bytes, MAX_GRAPH_BYTES))
    if header.get("kind") != "graph":
        raise RuntimeError("expected the graph")
    runner = make(data)
    channel.send({"kind": "loaded", "programs": len(runner.graph.programs)})
    return runner


def serve(channel: Channel, *, folder: str, harness: dict[str, Any], graph_bytes: int) -> dict[str, Any]:
    """The jail's function for an untrusted entry's graph (no team code here): read the graph the organizer sends,
    then answer its messages (module docstring) until ``end``."""
    runner = _load(channel, graph_bytes, lambda data: GraphRunner.of_bytes(data, Harness(**harness)))
    return channel.serve({
        "array": lambda header, payload: channel.send_array(runner.run_image(image_of(header, payload))),
        "figures": lambda header, _: channel.send({"kind": "figures", **runner.figures(
            header["input_shape"], bool(header.get("fvcore", True)), bool(header.get("cross_check", False)))}),
        "memory": lambda header, _: channel.send({"kind": "memory", **runner.memory(
            channel.receive_images(int(header["count"])))})})


# ---------------------------------------------------------------------------------------------------------- clips

class ClipGraphModel(nn.Module):
    """A video graph as ``enhance_clip`` calls a video model: ``forward(x, **kwargs)`` runs the program exported
    for that call; ``min_frames`` and, where the entry takes PQF positions, ``default_pqf`` (the positions its run
    used) come from the team side's report (a lie there only makes the graph's outputs differ)."""

    def __init__(self, graph: Graph, attrs: dict[str, Any], positions: Sequence[int] | None):
        super().__init__()
        self.graph = graph
        self.min_frames = int(attrs.get("min_frames", 1))
        if attrs.get("pqf"):
            self.default_pqf = lambda n: list(positions or [])

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        call = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in kwargs.items()}
        return self.graph.program_for(tuple(x.shape), call).module(x)


class ClipGraphRunner:
    """A video entry's exported graph with the entry's :class:`~ntirekit.eval.producer.ClipHarness`."""

    def __init__(self, graph: Graph, harness: ClipHarness):
        self.harness = harness
        self.device = resolve_device(harness.device)
        self.graph = graph.to(self.device)

    @classmethod
    def of_bytes(cls, data: bytes, harness: ClipHarness) -> "ClipGraphRunner":
        return cls(read_graph(data, device="cpu", max_tensor_bytes=MAX_GRAPH_BYTES), harness)

    def run_clip(self, frames: Sequence[np.ndarray], positions: Sequence[int] | None,
                 attrs: dict[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
        """The graph's output frames and the kit's timing of it (``runtime_ms_per_frame``, ``model_seconds``,
        ``max_memory_mib``: :func:`~ntirekit.eval.clip_inference.enhance_clip`'s statistics)."""
        model = ClipGraphModel(self.graph, attrs, positions)
        out, stats = self.harness.enhance(model, frames, self.device, positions if attrs.get("pqf") else None)
        return out, {k: stats[k] for k in ("runtime_ms_per_frame", "model_seconds", "max_memory_mib")}

    def figures(self, width: int, height: int) -> dict[str, Any]:
        """``params`` (:func:`ntirekit.measure.graph_counts.params_of`) and ``macs_per_frame``: fvcore's MACs of a
        3-frame clip minus a 2-frame clip at ``width`` x ``height`` (the programs exported for those calls)."""
        graph = self.graph.to("cpu")
        three = graph.program_for((1, 3, 3, height, width))
        two = graph.program_for((1, 2, 3, height, width))
        macs = fvcore_counts(three.module, (1, 3, 3, height, width))[0] - \
            fvcore_counts(two.module, (1, 2, 3, height, width))[0]
        graph.to(self.device)
        return {"params": params_of(three)[0], "macs_per_frame": int(macs), "macs_input": [width, height]}


def serve_clips(channel: Channel, *, folder: str, harness: dict[str, Any], graph_bytes: int) -> dict[str, Any]:
    """The jail's function for an untrusted video entry's graph (no team code here): read the graph, then answer
    ``clip`` (``frames`` arrays follow, ``pqf``, ``attrs``; reply: the output frames, then ``clip-done`` with the
    timing statistics), ``figures`` (``size``), ``end``."""
    runner = _load(channel, graph_bytes, lambda data: ClipGraphRunner.of_bytes(data, ClipHarness(**harness)))

    def clip(header: dict[str, Any], _payload: bytes) -> None:
        def run(frames: list[np.ndarray]) -> tuple[list[np.ndarray], dict[str, Any]]:
            out, stats = runner.run_clip(frames, header.get("pqf"), dict(header.get("attrs") or {}))
            return out, {"stats": stats}
        answer_clip(channel, header, run)

    return channel.serve({"clip": clip, "figures": lambda header, _: channel.send(
        {"kind": "figures", **runner.figures(*(int(v) for v in header["size"]))})})
