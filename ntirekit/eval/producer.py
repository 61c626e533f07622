"""The team side of a measurement: an entry's own model, producing outputs and an exported graph, and nothing else.

A :class:`Producer` holds an entry's eager model (built from its code, weights loaded strictly) and the harness
around it: :meth:`Producer.run_image` turns an RGB uint8 LR image into the RGB uint8 output exactly as the official
harness does (:func:`ntirekit.eval.inference.upscale_image`: tiles, clamp, round); :meth:`Producer.export` exports
the model for the input shapes the organizer will run (:func:`ntirekit.graph.export.export_graph`). It computes no
figure. For a trusted entry it runs in the organizer's process; for an untrusted one, :func:`serve` runs it in the
jail (:mod:`ntirekit.jail`) and answers the organizer's messages (:mod:`ntirekit.eval.sides`, which also holds the
organizer's side of the conversation).

Messages the jailed producer answers: ``image`` (an LR array; reply: the output array), ``export`` (``shapes``;
reply: ``graph`` with the file as payload, or ``not-exportable`` with one line), ``end``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ntirekit.core.device import resolve_device
from ntirekit.core.spec import Entry, EntrySpec
from ntirekit.eval.clip_inference import enhance_clip
from ntirekit.eval.inference import call_shapes, upscale_image
from ntirekit.eval.pipeline import measured_form
from ntirekit.graph.errors import NotExportable
from ntirekit.graph.export import ExportedGraph, export_calls, export_graph
from ntirekit.jail.channel import Channel, image_of
from ntirekit.nn.deform import implementation


@dataclass(frozen=True)
class Harness:
    """How an image entry is run (sent to the jail as JSON): scale, input data range, tile size (LR pixels, None
    for whole images) and overlap, device, whether to keep re-parameterizable blocks in their training form, and the
    weights (a path relative to the entry folder, or None for random weights)."""

    scale: int
    data_range: float
    tile: int | None = None
    overlap: int = 16
    device: str = "cpu"
    training_form: bool = False
    weights: str | None = None
    multiple: int = 1

    def model_shapes(self, image_shapes: Sequence[tuple[int, int]]) -> list[tuple[int, ...]]:
        """The model input shapes (``1x3xhxw``) the harness calls for LR images of ``image_shapes`` (``(h, w)``)."""
        shapes: list[tuple[int, ...]] = []
        for h, w in image_shapes:
            shapes += call_shapes((1, 3, h, w), self.tile, self.overlap)
        return list(dict.fromkeys(shapes))

    def output_shape(self, lr_shape: Sequence[int]) -> tuple[int, int, int]:
        """The RGB uint8 output shape for an LR image of ``lr_shape`` (``HxWx3``)."""
        return lr_shape[0] * self.scale, lr_shape[1] * self.scale, 3

    def upscale(self, model: torch.nn.Module, lr: np.ndarray, device: torch.device) -> np.ndarray:
        """``model``'s RGB uint8 output for one RGB uint8 LR image (``HxWx3``) under this harness
        (:func:`~ntirekit.eval.inference.upscale_image`): the entry's model and its graph both run through here."""
        return upscale_image(model, lr, scale=self.scale, data_range=self.data_range, device=device, tile=self.tile,
                             overlap=self.overlap)


class Producer:
    """An entry's eager model with the harness (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, harness: Harness, form: str | None = None):
        self.model, self.harness, self.form = model, harness, form
        self.device = resolve_device(harness.device)

    @classmethod
    def of_entry(cls, entry: Entry, harness: Harness, weights_file: str | Path | None = None) -> "Producer":
        """Build and load ``entry`` (its code runs here: call this in the jail for an untrusted entry) and put it
        in the form the challenge measures (:func:`ntirekit.eval.pipeline.measured_form`). The weights:
        ``weights_file`` (a checkpoint this process resolved) or ``harness.weights`` inside the entry folder."""
        weights = str(weights_file) if weights_file else str(entry.folder / harness.weights) if harness.weights \
            else None
        device = resolve_device(harness.device)
        model = entry.load(weights, pretrained=weights is not None, device=device)
        form = measured_form(model, training_form=harness.training_form)
        return cls(model, harness, form)

    def run_image(self, lr: np.ndarray) -> np.ndarray:
        """The RGB uint8 output for one RGB uint8 LR image (``HxWx3``)."""
        return self.harness.upscale(self.model, lr, self.device)

    def export(self, shapes: Sequence[Sequence[int]]) -> ExportedGraph:
        """The model exported for ``shapes`` (:class:`~ntirekit.graph.errors.NotExportable` when it cannot be)."""
        return export_graph(self.model, [tuple(s) for s in shapes], self.harness.multiple)


def serve(channel: Channel, *, folder: str, spec: dict[str, Any], harness: dict[str, Any]) -> dict[str, Any]:
    """The jail's function for an untrusted image entry: build it, then answer the organizer's messages (module
    docstring) until ``end``."""
    entry = Entry(EntrySpec.from_dict(spec, f"{folder}/entry.toml"), Path(folder))
    producer = Producer.of_entry(entry, Harness(**harness))
    channel.send({"kind": "built", "form": producer.form})
    return channel.serve({
        "array": lambda header, payload: channel.send_array(producer.run_image(image_of(header, payload))),
        "export": lambda header, _: send_graph(channel, lambda: producer.export(header["shapes"]))})


def send_graph(channel: Channel, export: Callable[[], ExportedGraph]) -> None:
    """Reply to ``export``: the graph file (``graph``), or ``not-exportable`` with the one line why."""
    try:
        graph = export()
    except NotExportable as exc:
        channel.send({"kind": "not-exportable", "error": str(exc)[:2000]})
        return
    channel.send({"kind": "graph"}, graph.data)        # nothing else: every figure about it is the organizer's own


def answer_clip(channel: Channel, header: dict[str, Any],
                run: Callable[[list[np.ndarray]], tuple[list[np.ndarray], dict[str, Any]]]) -> None:
    """Reply to ``clip``: receive its ``frames`` frames, run them, send the output frames, then ``clip-done`` with
    what ``run`` reports."""
    out, done = run(channel.receive_images(int(header["frames"])))
    for frame in out:
        channel.send_array(frame)
    channel.send({"kind": "clip-done", **done})


# ---------------------------------------------------------------------------------------------------------- clips

@dataclass(frozen=True)
class ClipHarness:
    """How a video entry is run (sent to the jail as JSON): :func:`ntirekit.eval.clip_inference.enhance_clip`'s
    settings (chunk, overlap, duplicates dropped, the input contract's ``min_size`` and ``multiple``), input data
    range, scale, device and weights (a path relative to the entry folder, or None)."""

    scale: int
    data_range: float
    chunk: int | None = None
    overlap: int = 2
    drop_duplicates: bool = True
    min_size: int = 256
    multiple: int = 4
    device: str = "cpu"
    weights: str | None = None

    def output_shape(self, frame_shape: Sequence[int]) -> tuple[int, int, int]:
        return frame_shape[0] * self.scale, frame_shape[1] * self.scale, 3

    def enhance(self, model: torch.nn.Module, frames: Sequence[np.ndarray], device: torch.device,
                pqf: Sequence[int] | None, on_frames: Callable[[int], Any] | None = None) -> tuple[list[np.ndarray],
                                                                                                dict[str, Any]]:
        """``model``'s uint8 output frames for a clip and :func:`~ntirekit.eval.clip_inference.enhance_clip`'s
        statistics under this harness: the entry's model and its graph both run through here."""
        return enhance_clip(model, frames, chunk=self.chunk, overlap=self.overlap, pad_to_multiple=self.multiple,
                            min_size=self.min_size, drop_duplicates=self.drop_duplicates, device=device,
                            data_range=self.data_range, pqf=pqf, on_frames=on_frames)


class _Recorder(torch.nn.Module):
    """A video model whose calls (input shape, keyword arguments) are recorded; ``min_frames`` and, for a model that
    takes PQF positions, ``default_pqf`` pass through."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.calls: list[tuple[list[int], dict[str, Any]]] = []
        self.min_frames = int(getattr(model, "min_frames", 1))
        if callable(getattr(model, "default_pqf", None)):
            self.default_pqf = model.default_pqf

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.calls.append((list(x.shape), {k: list(v) if isinstance(v, (list, tuple)) else v
                                           for k, v in kwargs.items()}))
        return self.model(x, **kwargs)


class ClipProducer:
    """A video entry's eager model with :func:`~ntirekit.eval.clip_inference.enhance_clip` around it."""

    def __init__(self, model: torch.nn.Module, harness: ClipHarness):
        self.model, self.harness = model, harness
        self.device = resolve_device(harness.device)
        self.recorder = _Recorder(model)

    @classmethod
    def of_entry(cls, entry: Entry, harness: ClipHarness) -> "ClipProducer":
        weights = str(entry.folder / harness.weights) if harness.weights else None
        return cls(entry.load(weights, pretrained=weights is not None, device=resolve_device(harness.device)), harness)

    def run_clip(self, frames: Sequence[np.ndarray], pqf: Sequence[int] | None) -> tuple[list[np.ndarray],
                                                                                         dict[str, Any]]:
        """The uint8 output frames, and what the graph side needs to run the same calls: ``calls`` (input shape and
        keyword arguments of each model call), ``attrs`` (``min_frames``, whether it takes PQF positions) and the
        run's non-figure statistics (``unique_frames``, ``chunks``, ``padded_size``, ``pqf``)."""
        self.recorder.calls = []
        out, stats = self.harness.enhance(self.recorder, frames, self.device, pqf)
        attrs = {"min_frames": self.recorder.min_frames, "pqf": hasattr(self.recorder, "default_pqf")}
        return out, {"calls": self.recorder.calls, "attrs": attrs,
                     "stats": {k: stats[k] for k in ("unique_frames", "chunks", "padded_size", "pqf")}}

    def export(self, calls: Sequence[tuple[Sequence[int], dict[str, Any]]]) -> ExportedGraph:
        """The model exported for ``calls`` with the pure-torch deformable convolution (the compiled torchvision
        operator is not on the graph allowlist)."""
        with implementation("torch"):
            return export_calls(self.model, calls)


def serve_clips(channel: Channel, *, folder: str, spec: dict[str, Any], harness: dict[str, Any]) -> dict[str, Any]:
    """The jail's function for an untrusted video entry: ``clip`` (``frames`` arrays follow, ``pqf``; reply: the
    output frames, then ``clip-done`` with the calls, attributes and statistics), ``export`` (``calls``), ``end``."""
    entry = Entry(EntrySpec.from_dict(spec, f"{folder}/entry.toml"), Path(folder))
    producer = ClipProducer.of_entry(entry, ClipHarness(**harness))
    channel.send({"kind": "built"})
    return channel.serve({
        "clip": lambda header, _: answer_clip(channel, header, lambda frames: producer.run_clip(frames,
                                                                                                header.get("pqf"))),
        "export": lambda header, _: send_graph(channel, lambda: producer.export([(c[0], c[1])
                                                                                  for c in header["calls"]]))})
