"""One entry measured the way no team can forge: its outputs and its exported graph, checked against each other.

:func:`measure_entry`:

1. the team side (:func:`ntirekit.eval.sides.team_side`: the entry's code, jailed when untrusted) produces its uint8
   outputs for the inputs and the counting input, and exports the network for every model call the harness made;
2. this process vets the graph file (:func:`ntirekit.graph.read.read_graph`: refused in one line, before any of it
   runs, when it is anything but allowlisted operators and plain tensors);
3. the graph side (:func:`ntirekit.eval.sides.graph_side`: the kit's code only, jailed when the graph comes from an
   untrusted entry) runs the graph on the same inputs through the same harness and requires the same uint8 outputs
   (:func:`ntirekit.eval.graph_side.compare_outputs`), else the entry fails: "exported graph differs from the scored
   model" (a network that behaves otherwise when traced, timed or counted is caught here); then counts it, names it
   (``graph_id``) and measures its peak memory.

The caller times the returned :class:`~ntirekit.eval.graph_side.GraphModel` in its own process. A network that does
not export fails ("not exportable: ...") when untrusted; a trusted one is measured eagerly in this process
(``"measured": "eager"``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ntirekit.core.spec import Entry, input_contract
from ntirekit.core.trust import is_untrusted
from ntirekit.eval.graph_side import MAX_GRAPH_BYTES, GraphModel, compare_outputs, counting_image
from ntirekit.eval.guard import EntryFailed
from ntirekit.eval.pipeline import available_weights, memory_of, to_inputs
from ntirekit.eval.producer import ClipHarness, Harness
from ntirekit.eval.sides import graph_side, jail_checkpoint, team_side, timed_export
from ntirekit.eval.track import EvalOptions
from ntirekit.graph.errors import GraphError
from ntirekit.graph.read import read_graph
from ntirekit.jail.run import Limits
from ntirekit.measure.counts import count

_NO_MEMORY = {"max_memory_mib": None, "memory_kind": None, "nvml_memory_mib": None}


@dataclass
class Measured:
    """What :func:`measure_entry` gives: the module to time (the graph, or a trusted entry's eager model) and the
    record fields."""

    model: nn.Module
    fields: dict[str, Any]


def jailed(entry: Entry, options: EvalOptions) -> bool:
    """Whether ``entry``'s code runs in a jail: always when untrusted, every entry with ``options.isolate``."""
    return bool(options.isolate) or is_untrusted(entry.folder)


def measurement_weights(entry: Entry, explicit: str | None) -> tuple[Path | None, str | None, str]:
    """``(checkpoint, its path inside the entry folder as the jail gets it, label)`` for a measurement that does not
    depend on the weights' values: the checkpoint when given or found locally (never downloaded), else random
    weights."""
    label = available_weights(entry, explicit)
    if label == "random":
        return None, None, label
    path, rel = jail_checkpoint(entry, explicit)
    return (path, rel, label) if path is not None else (None, None, "random")


def harness_of(entry: Entry, options: EvalOptions, weights_rel: str | None, tile: int | None = None) -> Harness:
    """The harness ``entry`` runs under for ``options``."""
    extra = options.extra or {}
    return Harness(scale=entry.spec.scale, data_range=entry.spec.data_range, tile=tile,
                   overlap=options.tile_overlap, device=options.device,
                   training_form=bool(extra.get("training_form", False)), weights=weights_rel,
                   multiple=input_contract(entry).multiple)


def clip_harness_of(entry: Entry, options: EvalOptions, weights_rel: str | None = None) -> ClipHarness:
    """The harness video ``entry`` runs under for ``options`` (``extra``: ``chunk``, ``overlap`` (default 2),
    ``drop_duplicates`` (default: for QE entries); the input contract's ``min_size`` and ``multiple``)."""
    extra = options.extra or {}
    contract = input_contract(entry)
    return ClipHarness(scale=entry.spec.scale, data_range=entry.spec.data_range, chunk=extra.get("chunk"),
                       overlap=int(extra.get("overlap", 2)),
                       drop_duplicates=bool(extra.get("drop_duplicates", entry.spec.task == "qe")),
                       min_size=contract.min_size, multiple=contract.multiple, device=options.device,
                       weights=weights_rel)


def vet(data: bytes) -> Any:
    """The vetted graph, or the entry's failure: "graph refused: ..." (nothing of it has run)."""
    try:
        return read_graph(data, max_tensor_bytes=MAX_GRAPH_BYTES)
    except GraphError as exc:
        raise EntryFailed(f"graph refused: {exc}", "graph-refused") from None


def fresh_images(shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """One RGB uint8 image of random pixels per ``(h, w)`` in ``shapes``, from a seed drawn now (no team can know
    them when it exports its graph)."""
    rng = np.random.default_rng(secrets.randbits(64))
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in dict.fromkeys(shapes)]


def check_shapes(graph: Any, harness: Harness, images: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """The image sizes of :func:`fresh_images` for ``graph``: one per program the harness runs on ``images`` (each
    program proven on inputs it could not have looked up)."""
    chosen: dict[int, tuple[int, int]] = {}
    for img in images:
        for shape in harness.model_shapes([img.shape[:2]]):
            index = next((i for i, p in enumerate(graph.programs) if p.accepts(shape)), None)
            if index is not None:
                chosen.setdefault(index, img.shape[:2])
    return list(chosen.values())


def export_info(graph: Any, data: bytes, seconds: float, checked: int) -> dict[str, Any]:
    """The record's ``graph`` field, every figure of it this process's own: programs and whether they are dynamic
    read off the vetted graph, the export's wall time timed here."""
    return {"programs": len(graph.programs), "dynamic": any(not isinstance(d, int) for p in graph.programs
                                                            for d in p.dims),
            "export_seconds": round(seconds, 3), "bytes": len(data), "checked_inputs": checked}


def check_outputs(side: Any, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], what: Sequence[str]) -> None:
    """The entry's failure "exported graph differs from the scored model" unless ``side`` gives ``outputs``."""
    for img, out, name in zip(inputs, outputs, what):
        problem = compare_outputs(out, side.run_image(img))
        if problem:
            raise EntryFailed(f"exported graph differs from the scored model: on {name} ({img.shape[1]}x"
                              f"{img.shape[0]}) {problem}", "graph-differs")


def one_network(figures: dict[str, Any]) -> dict[str, Any]:
    """The graph side's ``figures`` without ``structures``; the entry's failure "exported graph differs between input
    sizes" when its programs compute more than one network (:meth:`ntirekit.eval.graph_side.GraphRunner.figures`)."""
    if figures.pop("structures", 1) > 1:
        raise EntryFailed("exported graph differs between input sizes: its programs are not one network",
                          "graph-differs")
    return figures


def measure_entry(entry: Entry, options: EvalOptions, images: Sequence[np.ndarray], *, memory: bool,
                  limits: Limits) -> Measured:
    """Measure ``entry`` on its graph (module docstring): ``images`` are the RGB uint8 LR inputs its outputs are
    checked on (and its memory measured on); ``limits`` bound its jails."""
    started = time.perf_counter()
    extra = options.extra or {}
    weights, weights_rel, label = measurement_weights(entry, options.weights.get(entry.name))
    harness = harness_of(entry, options, weights_rel)
    count_shape = tuple(options.input_shape)
    check = [*images, counting_image(count_shape)]
    names = [f"input {k + 1}" for k in range(len(images))] + ["the counting input"]
    in_jail = jailed(entry, options)
    with team_side(entry, harness, jailed=in_jail, limits=limits, weights=weights) as (team, info):
        outputs = [team.run_image(img) for img in check]         # the entry's own failures first, then the export's
        data, reason, export_seconds = timed_export(team, harness.model_shapes([img.shape[:2] for img in check]))
        if data is None:
            if in_jail:
                raise EntryFailed(str(reason), "not-exportable")
            return _eager(entry, team.producer, options, images, memory, label, str(reason), started)
        graph = vet(data)
        fresh = fresh_images(check_shapes(graph, harness, check))    # drawn after the graph is in
        outputs += [team.run_image(img) for img in fresh]
        form = team.form if team.form in ("deploy", "training") else None
    check += fresh
    names += [f"random input {k + 1}" for k in range(len(fresh))]
    check_started = time.perf_counter()
    with graph_side(data, harness, jailed=in_jail, limits=limits) as side:
        check_outputs(side, check, outputs, names)
        check_seconds = (time.perf_counter() - check_started) / len(check)
        figures = side.figures(count_shape, bool(extra.get("fvcore", True)), bool(extra.get("cross_check", False)))
        peak = side.memory(list(images)) if memory else dict(_NO_MEMORY)
    one_network(figures)
    fields: dict[str, Any] = {**figures, **peak, "weights": label, "measured": "graph",
                              "graph": {"id": figures["graph_id"], **export_info(graph, data, export_seconds,
                                                                                 len(check))},
                              **({"form": form} if form else {}),
                              "seconds": round(time.perf_counter() - started, 3),
                              "check_seconds": round(check_seconds, 4)}
    if in_jail:
        fields.update(info.fields())
    return Measured(GraphModel(graph), fields)


def _eager(entry: Entry, producer: Any, options: EvalOptions, images: Sequence[np.ndarray], memory: bool,
           label: str, why: str, started: float) -> Measured:
    """A trusted entry that does not export (``why``: "not exportable: <its line>"), measured as the eager module in
    this process."""
    extra = options.extra or {}
    model = producer.model
    counts = count(model, tuple(options.input_shape), fvcore=bool(extra.get("fvcore", True)),
                   cross_check=bool(extra.get("cross_check", False)))
    fields = counts.record_fields()
    fields["warnings"] = [*counts.warnings, f"{why}: measured as the eager module (trusted)"]
    check_started = time.perf_counter()
    producer.run_image(images[0] if images else counting_image(tuple(options.input_shape)))
    check_seconds = time.perf_counter() - check_started
    peak = memory_of(model, to_inputs(images, entry.spec.data_range, "cpu"), producer.device) if memory \
        else dict(_NO_MEMORY)
    fields.update(peak, weights=label, measured="eager", **({"form": producer.form} if producer.form else {}),
                  seconds=round(time.perf_counter() - started, 3), check_seconds=round(check_seconds, 4))
    return Measured(model, fields)
