"""The one measuring pipeline for entries: the efficiency tracks, ``profile``, ``pack`` and the benchmarks call it.

Steps, each a function: the entry's model as measured (:func:`load_for_measurement`: pretrained weights when they
are at hand, else random ones, which counts, timings and memory do not depend on), its inputs (:func:`entry_inputs`:
the named LR images of :mod:`ntirekit.data.timing` as tensors in the entry's data range), its peak memory
(:func:`memory_of`) and its timings (:func:`time_entries`: several entries interleaved by the robust timer, runs
pooled). Counting is :func:`ntirekit.measure.counts.count` on the model. :mod:`ntirekit.measure` below it takes
models and tensors only.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ntirekit.core.spec import Entry, input_contract
from ntirekit.data.timing import timing_images
from ntirekit.measure.counts import macs_fvcore
from ntirekit.measure.memory import measure_memory
from ntirekit.measure.runtime import pool_runs, time_models, timed_calls
from ntirekit.nn.deform import implementation
from ntirekit.nn.rep import RepBlock, is_reparameterized
from ntirekit.quality.convert import to_model_input

__all__ = ["load_for_measurement", "available_weights", "declared_weights", "measured_form", "to_inputs", "entry_inputs", "memory_of", "time_entries", "macs_per_frame"]


def load_for_measurement(entry: Entry, explicit: str | None = None,
                         device: torch.device | str = "cpu") -> tuple[nn.Module, str]:
    """The entry's model in eval mode on ``device`` and ``"pretrained"`` when weights are given or available locally
    (never downloaded), else the randomly initialised model and ``"random"``."""
    label = available_weights(entry, explicit)
    return entry.load(explicit, pretrained=label == "pretrained", device=device), label


def available_weights(entry: Entry, explicit: str | None = None) -> str:
    """The weights a measurement that does not depend on them uses: ``"pretrained"`` when given or available
    locally (never downloaded), else ``"random"``."""
    return "pretrained" if explicit is not None or entry.has_weights() else "random"


def declared_weights(entry: Entry, explicit: str | None = None) -> str:
    """The weights :meth:`~ntirekit.core.spec.Entry.load` gives a quality track (strictly loaded when declared or
    given, else random): ``"none"`` for a reference method (no parameters to learn), ``"pretrained"`` or
    ``"random"``."""
    if entry.spec.reference:
        return "none"
    return "pretrained" if entry.spec.weights or explicit else "random"


def measured_form(model: nn.Module, training_form: bool = False) -> str | None:
    """Put ``model`` in the form the challenge measures and say which: the kit's re-parameterizable blocks
    (:class:`ntirekit.nn.rep.RepBlock`) still in training form are merged in place into their plain convolutions
    (``"deploy"``), unless ``training_form`` (``"training"``); None for a model without such blocks (a team's
    submitted code is measured as it builds)."""
    if is_reparameterized(model):
        return None
    if training_form:
        return "training"
    for module in model.modules():
        if isinstance(module, RepBlock):
            module.reparameterize()
    return "deploy"


def to_inputs(images: Iterable[np.ndarray], data_range: float, device: str | torch.device) -> list[torch.Tensor]:
    """RGB uint8 images → 1×3×H×W float tensors in ``[0, data_range]`` on ``device`` (the challenge's input)."""
    return [to_model_input(img, data_range, device) for img in images]


def entry_inputs(entry: Entry, data: str | None, device: str | torch.device = "cpu",
                 images: Sequence[np.ndarray] | None = None) -> list[torch.Tensor]:
    """The inputs ``entry`` is timed and its memory measured on: ``images`` (default: the LR images named ``data``
    for the entry's scale, :func:`ntirekit.data.timing.timing_images`) in the entry's data range."""
    if images is None:
        images = timing_images(data, scale=entry.spec.scale)
    return to_inputs(images, input_contract(entry).data_range, device)


def memory_of(model: nn.Module, inputs: Sequence[torch.Tensor], device: torch.device) -> dict[str, Any]:
    """Peak memory of ``model`` on ``device`` over ``inputs`` (:func:`ntirekit.measure.memory.measure_memory`); the
    model goes back to the CPU afterwards so that no other entry shares the device with it."""
    model.to(device)
    try:
        return measure_memory(model, inputs, device)
    finally:
        model.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()


def time_entries(models: Mapping[str, nn.Module], inputs: Mapping[str, Sequence[torch.Tensor]], *, timer: str,
                 device: torch.device, warmup: int = 3, repeats: int = 5, runs: int = 1, benchmark: bool = False,
                 threads: int | None = None, errors: dict[str, BaseException] | None = None,
                 progress: bool = False) -> dict[str, dict[str, Any]]:
    """The timer's statistics per entry (models and inputs already on ``device``), ``runs`` whole runs pooled
    (:func:`ntirekit.measure.runtime.pool_runs`); ``warmup``, ``repeats``, ``benchmark`` and ``threads`` (CPU
    threads pinned while timing) are the robust timer's. An entry whose call fails lands in ``errors`` (when given; else
    the error is raised) and is left out of the later runs. ``progress``: one bar with its ETA per run ("timing run
    k/N"), advanced after each timed call (outside the timed region)."""
    caught: dict[str, BaseException] = {} if errors is None else errors
    kwargs: dict[str, Any] = {"device": device}
    if timer == "robust":
        kwargs.update(warmup=warmup, repeats=repeats, benchmark=benchmark, threads=threads)
    per_run: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    for k in range(max(1, runs)):
        alive = {n: m for n, m in models.items() if n not in caught}
        if not alive:
            break
        with tqdm(total=timed_calls(alive, inputs, timer, repeats), desc=f"timing run {k + 1}/{max(1, runs)}",
                  unit="call", disable=not progress, leave=False) as bar:
            stats = time_models(alive, {n: inputs[n] for n in alive}, timer, errors=errors, tick=bar.update, **kwargs)
        for name, s in stats.items():
            per_run[name].append(s)
    return {name: pool_runs(runs_of) for name, runs_of in per_run.items() if runs_of and name not in caught}


def macs_per_frame(model: nn.Module, height: int, width: int) -> int:
    """fvcore MACs of a 3-frame clip minus a 2-frame clip: what one more frame costs (deformable convs counted
    through the pure-torch path, whose matmul fvcore sees)."""
    with implementation("torch"):
        return macs_fvcore(model, (1, 3, 3, height, width)) - macs_fvcore(model, (1, 2, 3, height, width))
