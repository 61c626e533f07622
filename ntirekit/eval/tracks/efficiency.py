"""The efficiency tracks: ``complexity``, ``runtime`` and ``overall``.

Every record carries the counts of :func:`ntirekit.measure.counts.count` on ``options.input_shape`` (``params``,
``macs_ntire2022``, ``macs_fvcore``, ``activations``, ``activations_fvcore``, ``convs``, ``input_shape``,
``warnings``), ``weights`` (``"pretrained"`` when a checkpoint is available locally or given with ``--weights``, else
``"random"``: counts and timings do not depend on the weights' values) and the device fingerprint.

``runtime`` and ``overall`` add ``runtime_ms`` (the timer's statistics, :mod:`ntirekit.measure.runtime`) and the peak
memory (``max_memory_mib``, ``memory_kind``, ``nvml_memory_mib``; :mod:`ntirekit.measure.memory`), both measured on
the LR images of ``options.data`` (default ``"div2k-like"``: DIV2K-shaped crops; :mod:`ntirekit.data.timing`) through
:mod:`ntirekit.eval.pipeline`. ``complexity`` measures no memory (its memory keys are ``None``). A CPU fingerprint
labels CPU timings as such; CPU memory is an estimate (``memory_kind = "cpu_estimate"``).

Order of work: each entry is loaded and counted (and, for runtime/overall, its memory measured with no other entry
on the device) inside :func:`ntirekit.eval.guard.guard`; then all entries that got so far are timed together (the
robust timer interleaves them). An entry that fails at any step becomes a failure record and the others go on. For
runtime/overall, each entry's counts and memory are yielded at once as a ``"partial"`` record (``"partial": true``,
no ``runtime_ms``), which the runner writes and its final record replaces: a run interrupted while timing keeps them.

``options.extra`` (declared in :data:`TRACKS`): ``fvcore`` (bool, default True), ``cross_check`` (bool, default
False: also torch's FlopCounterMode per operator, compared with fvcore), ``memory`` (bool, default True: the peak
memory of the timed tracks, on their timing inputs), ``images`` (int: time on the first N images only), ``crop`` (int:
centre-crop each LR input to at most ``crop x crop`` pixels), ``benchmark`` (bool: ``cudnn.benchmark`` for the
robust timer, default False as in the challenge) and ``training_form`` (bool, default False: entries built with the
kit's re-parameterizable blocks are merged into their deploy form before counting and timing, as the challenge
measures them, and the record says ``"form": "deploy"``; True keeps and records the training form).
Counting costs one shape-only pass plus one fvcore trace per entry
(:func:`ntirekit.measure.counts.count`).

Before the timing phase an estimate of its duration is printed (with progress on): the fvcore trace of the counting
input is about one forward pass, scaled by the timing inputs' pixels and the number of timed runs. No background
work runs while a forward is timed (the image pipeline of the psnr track is not used here).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ntirekit.core.errors import OptionError
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record
from ntirekit.core.spec import Entry
from ntirekit.data.images import open_image_dataset
from ntirekit.data.timing import DIV2K_LIKE, timing_images
from ntirekit.eval.columns import COUNTS, MEMORY, RUNTIME
from ntirekit.eval.guard import guard
from ntirekit.eval.pipeline import entry_inputs, load_for_measurement, measured_form, memory_of, time_entries
from ntirekit.eval.track import EvalOptions, Track, TrackOption
from ntirekit.measure.counts import count

TRACK_NAMES = ("runtime", "complexity", "overall")


def _input_label(options: EvalOptions) -> str:
    label = str(options.data)
    extra = options.extra or {}
    if extra.get("images"):
        label += f", first {int(extra['images'])} images"
    if extra.get("crop"):
        label += f", centre crops of at most {int(extra['crop'])}x{int(extra['crop'])}"
    return label


def evaluate(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    track = options.track
    if track not in TRACK_NAMES:
        raise OptionError(f"the efficiency module runs tracks {TRACK_NAMES}, not {track!r}")
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

    phase = f"{track}: count + memory" if with_memory else f"{track}: count"
    for entry in tqdm(entries, desc=phase, unit="entry", disable=not options.progress, leave=False):
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
            yield {**record(entry.name, track, fp, **fields), "status": "partial", "partial": True}
        else:
            yield record(entry.name, track, fp, **fields)

    if not timed or not pending:
        return
    if options.progress:
        tqdm.write(_timing_estimate(pending, images_by_scale, options))
    yield from _time_pending(pending, images_by_scale, options, device, fp, track)


def _timing_estimate(pending: dict[str, tuple[Entry, nn.Module, dict[str, Any]]],
                     images_by_scale: dict[int, list[np.ndarray]], options: EvalOptions) -> str:
    """``timing N entries: about S s`` from each entry's counting time (about one forward of the counting input:
    the fvcore trace), scaled by the timing inputs' pixels and the number of timed runs."""
    count_pixels = options.input_shape[-1] * options.input_shape[-2]
    runs = max(1, options.runs) * (options.warmup + options.repeats if options.timer == "robust" else 1)
    total = 0.0
    for entry, _model, fields in pending.values():
        pixels = sum(img.shape[0] * img.shape[1] for img in images_by_scale[entry.spec.scale])
        total += fields.get("count_seconds", 0.0) * pixels / count_pixels * runs
    return f"timing {len(pending)} entries ({options.timer} timer): about {total:.0f} s"


def _prepare(entry: Entry, options: EvalOptions, device: torch.device, images_by_scale: dict[int, list[np.ndarray]],
             use_fvcore: bool, timed: bool, with_memory: bool) -> tuple[nn.Module, dict[str, Any]]:
    """Load and count one entry (and measure its memory for the timed tracks); raises on any failure."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the {options.track} track runs esr entries")
    started = time.perf_counter()
    model, weights = load_for_measurement(entry, options.weights.get(entry.name))
    extra = options.extra or {}
    form = measured_form(model, training_form=bool(extra.get("training_form", False)))
    counted = time.perf_counter()
    counts = count(model, options.input_shape, fvcore=use_fvcore, cross_check=bool(extra.get("cross_check", False)))
    count_seconds = time.perf_counter() - counted
    fields: dict[str, Any] = {
        "params": counts.params, "macs_ntire2022": counts.macs_ntire2022, "macs_fvcore": counts.macs_fvcore,
        "activations": counts.activations, "activations_fvcore": counts.activations_fvcore,
        "convs": counts.convs, "flops_torch": counts.flops_torch, "functional_convs": counts.functional_convs,
        "input_shape": list(counts.input_shape), "warnings": list(counts.warnings), "weights": weights,
        "scale": entry.spec.scale, "data_range": entry.spec.data_range,
        "max_memory_mib": None, "memory_kind": None, "nvml_memory_mib": None,
        **({"form": form} if form else {}),
    }
    if timed:
        scale = entry.spec.scale
        if scale not in images_by_scale:
            images_by_scale[scale] = timing_images(options.data, scale, extra.get("images"), extra.get("crop"))
        if with_memory:
            fields.update(memory_of(model, entry_inputs(entry, options.data, "cpu", images_by_scale[scale]), device))
            fields["memory_input"] = _input_label(options)
    fields["seconds"] = round(time.perf_counter() - started, 3)
    fields["count_seconds"] = round(count_seconds, 3)
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
            inputs[name] = entry_inputs(entry, options.data, device, images_by_scale[entry.spec.scale])
    yield from failed
    errors: dict[str, BaseException] = {}
    timings = time_entries(models, inputs, timer=options.timer, device=device, warmup=options.warmup,
                           repeats=options.repeats, runs=options.runs, benchmark=bool(extra.get("benchmark", False)),
                           errors=errors, progress=options.progress)
    for name, (entry, model, fields) in pending.items():
        if name not in models:
            continue
        if name in errors:
            sink: list[dict[str, Any]] = []
            with guard(entry, track, fp, sink):
                raise errors[name]
            yield from sink
            continue
        fields.update(runtime_ms=timings[name], timer=options.timer, runtime_input=_input_label(options),
                      runtime_images=len(inputs[name]))
        yield record(name, track, fp, **fields)
    for model in models.values():
        model.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()


def check_data(data: str, scale: int) -> None:
    """Open a timing dataset other than the built-in ``div2k-like`` (a bad ``--data`` is one error before counting)."""
    if data not in ("", DIV2K_LIKE):
        open_image_dataset(data, scale=scale)


_COUNT_FIELDS = ("params", "macs_ntire2022", "macs_fvcore", "activations", "activations_fvcore", "convs",
                 "input_shape", "warnings", "weights", "scale", "data_range", "max_memory_mib", "memory_kind")
_TIMED_FIELDS = (*_COUNT_FIELDS, "runtime_ms", "timer", "runtime_input", "runtime_images")
_OPTIONAL_FIELDS = ("flops_torch", "functional_convs", "nvml_memory_mib", "memory_input", "seconds", "count_seconds",
                    "form")
_OPTIONS = (
    TrackOption("fvcore", bool, True, "also count with fvcore (macs_fvcore, activations_fvcore)"),
    TrackOption("cross_check", bool, False, "also count with torch's FlopCounterMode and compare with fvcore per "
                "operator (warnings in the record)", "--cross-check"),
    TrackOption("memory", bool, True, "measure the peak memory on the timing inputs (CUDA: max_memory_allocated; "
                "CPU: an estimate)", "--no-memory", negate=True),
    TrackOption("images", int, None, "time on the first N inputs only (default: all; CPU quick run: 2)", "--images"),
    TrackOption("crop", int, None, "centre-crop each LR input to at most NxN (default: none; CPU quick run: 128)",
                "--crop"),
    TrackOption("benchmark", bool, False, "cudnn.benchmark for the robust timer (the challenge had it off)"),
    TrackOption("training_form", bool, False, "count and time re-parameterizable entries in their training form "
                "(default: merged into the deploy form first, as the challenge measures them)", "--training-form"),
)
TRACKS = (
    Track("runtime", evaluate, "esr", times=True, record_fields=_TIMED_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=RUNTIME + MEMORY, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True, finite_guard=False, check_data=check_data,
          description="runtime (timer statistics) and peak memory, with the counts"),
    Track("complexity", evaluate, "esr", times=False, record_fields=_COUNT_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=COUNTS, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True, finite_guard=False, check_data=check_data,
          description="params, MACs, activations, #conv on --input-shape"),
    Track("overall", evaluate, "esr", times=True, record_fields=_TIMED_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=RUNTIME + COUNTS + MEMORY, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True, finite_guard=False, check_data=check_data,
          description="runtime, memory and counts"),
)
