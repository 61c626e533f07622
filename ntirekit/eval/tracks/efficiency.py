"""The efficiency tracks: ``complexity``, ``runtime`` and ``overall``.

Every record carries the counts of :func:`ntirekit.measure.counts.count` on ``options.input_shape`` (``params``,
``macs_ntire2022``, ``macs_fvcore``, ``activations``, ``activations_fvcore``, ``convs``, ``input_shape``,
``warnings``), ``weights`` (``"pretrained"`` when a checkpoint is available locally or given with ``--weights``, else
``"random"``: counts and timings do not depend on the weights' values) and the device fingerprint.

``runtime`` and ``overall`` add ``runtime_ms`` (the timer's statistics, :mod:`ntirekit.measure.runtime`) and the peak
memory (``max_memory_mib``, ``memory_kind``, ``nvml_memory_mib``; :mod:`ntirekit.measure.memory`), both measured on
the LR images of ``options.data`` (``"sample"``: the kit's DIV2K-like images). ``complexity`` measures no memory
(its memory keys are ``None``). A CPU fingerprint labels CPU timings as such; CPU memory is an estimate
(``memory_kind = "cpu_estimate"``).

Order of work: each entry is loaded and counted (and, for runtime/overall, its memory measured with no other entry
on the device) inside :func:`ntirekit.eval.runner.guard`; then all entries that got so far are timed together (the robust
timer interleaves them). An entry that fails at any step becomes a failure record and the others go on.

``options.extra`` understands ``fvcore`` (bool, default True), ``memory`` (bool, default True) and ``benchmark``
(bool: ``cudnn.benchmark`` for the robust timer, default False as in the challenge).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ntirekit.core.spec import Entry
from ntirekit.measure.counts import count
from ntirekit.measure.device import fingerprint, resolve_device
from ntirekit.measure.memory import measure_memory
from ntirekit.measure.runtime import dataset_images, pool_runs, time_models, to_inputs
from ntirekit.core.records import record
from ntirekit.eval.runner import guard
from ntirekit.eval.track import EvalOptions

TRACK_NAMES = ("runtime", "complexity", "overall")


def load_for_measurement(entry: Entry, explicit: str | None = None,
                         device: torch.device | str = "cpu") -> tuple[nn.Module, str]:
    """The entry's model in eval mode on ``device`` and ``"pretrained"`` when weights are given or available locally
    (never downloaded), else the randomly initialised model and ``"random"``."""
    if explicit is not None or entry.has_weights():
        return entry.load(explicit, pretrained=True, device=device), "pretrained"
    return entry.load(pretrained=False, device=device), "random"


def _input_label(options: EvalOptions) -> str:
    return "sample" if options.data in ("", "sample") else str(options.data)


def evaluate(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    track = options.track
    if track not in TRACK_NAMES:
        raise ValueError(f"the efficiency module runs tracks {TRACK_NAMES}, not {track!r}")
    device = resolve_device(options.device)
    threads_before = torch.get_num_threads()
    if options.threads and device.type == "cpu":
        torch.set_num_threads(int(options.threads))
    try:
        yield from _evaluate(entries, options, track, device)
    finally:
        torch.set_num_threads(threads_before)


def _evaluate(entries: list[Entry], options: EvalOptions, track: str,
              device: torch.device) -> Iterator[dict[str, Any]]:
    fp = fingerprint(device)
    timed = track in ("runtime", "overall")
    extra = options.extra or {}
    use_fvcore = bool(extra.get("fvcore", True))
    with_memory = timed and bool(extra.get("memory", True))
    images_by_scale: dict[int, list[np.ndarray]] = {}
    pending: dict[str, tuple[Entry, nn.Module, dict[str, Any]]] = {}

    for entry in tqdm(entries, desc=f"{track}: count", unit="entry", disable=not options.progress, leave=False):
        failed: list[dict[str, Any]] = []
        prepared: tuple[nn.Module, dict[str, Any]] | None = None
        with guard(entry, track, fp, failed):  # never yield inside guard: it would swallow GeneratorExit
            prepared = _prepare(entry, options, device, images_by_scale, use_fvcore, timed, with_memory)
        if prepared is None:
            yield from failed
            continue
        model, fields = prepared
        if timed:
            pending[entry.name] = (entry, model, fields)
        else:
            yield record(entry.name, track, fp, **fields)

    if not timed or not pending:
        return
    yield from _time_pending(pending, images_by_scale, options, device, fp, track)


def _prepare(entry: Entry, options: EvalOptions, device: torch.device, images_by_scale: dict[int, list[np.ndarray]],
             use_fvcore: bool, timed: bool, with_memory: bool) -> tuple[nn.Module, dict[str, Any]]:
    """Load and count one entry (and measure its memory for the timed tracks); raises on any failure."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the {options.track} track runs esr entries")
    started = time.perf_counter()
    model, weights = load_for_measurement(entry, options.weights.get(entry.name))
    counts = count(model, options.input_shape, fvcore=use_fvcore)
    fields: dict[str, Any] = {
        "params": counts.params, "macs_ntire2022": counts.macs_ntire2022, "macs_fvcore": counts.macs_fvcore,
        "activations": counts.activations, "activations_fvcore": counts.activations_fvcore,
        "convs": counts.convs, "flops_torch": counts.flops_torch, "functional_convs": counts.functional_convs,
        "input_shape": list(counts.input_shape), "warnings": list(counts.warnings), "weights": weights,
        "scale": entry.spec.scale, "data_range": entry.spec.data_range,
        "max_memory_mib": None, "memory_kind": None, "nvml_memory_mib": None,
    }
    if timed:
        scale = entry.spec.scale
        if scale not in images_by_scale:
            images_by_scale[scale] = dataset_images(options.data, scale=scale)
        if with_memory:
            cpu_inputs = to_inputs(images_by_scale[scale], entry.spec.data_range, "cpu")
            model.to(device)
            try:
                fields.update(measure_memory(model, cpu_inputs, device))
            finally:
                model.to("cpu")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            fields["memory_input"] = _input_label(options)
    fields["seconds"] = round(time.perf_counter() - started, 3)
    return model, fields


def _time_pending(pending: dict[str, tuple[Entry, nn.Module, dict[str, Any]]],
                  images_by_scale: dict[int, list[np.ndarray]], options: EvalOptions, device: torch.device,
                  fp: dict[str, Any], track: str) -> Iterator[dict[str, Any]]:
    extra = options.extra or {}
    models: dict[str, nn.Module] = {}
    inputs: dict[str, list[torch.Tensor]] = {}
    failed: list[dict[str, Any]] = []
    for name, (entry, model, _fields) in pending.items():
        with guard(entry, track, fp, failed):
            models[name] = model.to(device)
            inputs[name] = to_inputs(images_by_scale[entry.spec.scale], entry.spec.data_range, device)
    yield from failed
    errors: dict[str, BaseException] = {}
    per_run: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    kwargs: dict[str, Any] = {"device": device}
    if options.timer == "robust":
        kwargs.update(warmup=options.warmup, repeats=options.repeats, benchmark=bool(extra.get("benchmark", False)))
    for _ in range(max(1, options.runs)):
        alive = {n: m for n, m in models.items() if n not in errors}
        if not alive:
            break
        stats = time_models(alive, {n: inputs[n] for n in alive}, options.timer, errors=errors, **kwargs)
        for name, s in stats.items():
            per_run[name].append(s)
    for name, (entry, model, fields) in pending.items():
        if name not in models:
            continue
        if name in errors:
            sink: list[dict[str, Any]] = []
            with guard(entry, track, fp, sink):
                raise errors[name]
            yield from sink
            continue
        runtime = pool_runs(per_run[name])
        fields.update(runtime_ms=runtime, timer=options.timer, runtime_input=_input_label(options),
                      runtime_images=len(inputs[name]))
        yield record(name, track, fp, **fields)
    for model in models.values():
        model.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()
