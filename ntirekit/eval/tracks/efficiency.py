"""The efficiency tracks: ``complexity``, ``runtime`` and ``overall``, measured on each entry's exported graph.

For every entry (:mod:`ntirekit.eval.measure_graph`): its own code, in the jail when it is untrusted, produces outputs
for the timing inputs and the counting input and exports its graph; this process vets the graph, runs it on the same
inputs (in a jail without team code for an untrusted entry) and requires the same outputs ("exported graph differs
from the scored model" otherwise), then counts it on ``options.input_shape`` (``params``, ``macs_ntire2022`` and the
convolutions that counter misses, ``macs_fvcore``, ``activations``, ``activations_fvcore``, ``convs``,
``input_shape``, ``warnings``; :mod:`ntirekit.measure.graph_counts`), names it (``graph_id``) and, for ``runtime`` and
``overall``, measures its peak memory (``max_memory_mib``, ``memory_kind``, ``nvml_memory_mib``;
:mod:`ntirekit.measure.memory`) on the timing inputs. Then every entry's graph is timed in this process, the robust
timer interleaving them (``runtime_ms``: :mod:`ntirekit.measure.runtime`), so every entry is timed the same way
whatever its trust. No figure comes from the entry's process.

An untrusted entry whose network does not export is not measured ("not exportable: ..."); a trusted one is measured
as the eager module (``"measured": "eager"``). Records say ``weights`` (``"pretrained"`` when a checkpoint is available
locally or given, else ``"random"``: counts and timings do not depend on the weights' values), ``measured``
(``graph`` | ``eager``), ``graph`` (how it was exported and checked) and, for a jailed entry, ``sandbox``,
``limits`` and ``output``.

Inputs: the LR images of ``options.data`` (default ``"div2k-like"``: DIV2K-shaped crops; :mod:`ntirekit.data.timing`).
For runtime/overall each entry's counts and memory are yielded first as a ``"partial"`` record (``"partial": true``, no
``runtime_ms``), which the runner writes and the final record replaces: a run interrupted while timing keeps them.

``options.extra`` (declared in :data:`TRACKS`): ``fvcore`` (bool, default True), ``cross_check`` (bool: also torch's
FlopCounterMode per operator, compared with fvcore), ``memory`` (bool, default True), ``images`` (int: the first N
inputs only), ``crop`` (int: centre-crop each LR input to at most ``crop x crop``), ``benchmark`` (bool:
``cudnn.benchmark`` for the robust timer, default False as in the challenge) and ``training_form`` (bool: entries built
with the kit's re-parameterizable blocks are merged into their deploy form first, as the challenge measures them,
``"form": "deploy"``; True keeps the training form).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.errors import OptionError
from ntirekit.core.records import record
from ntirekit.core.spec import Entry
from ntirekit.data.images import open_image_dataset
from ntirekit.data.timing import DIV2K_LIKE, timing_images
from ntirekit.eval.columns import COUNTS, MEMORY, RUNTIME
from ntirekit.eval.guard import guard
from ntirekit.eval.limits import run_limits
from ntirekit.eval.measure_graph import measure_entry
from ntirekit.eval.pipeline import entry_inputs, time_entries
from ntirekit.eval.track import EvalOptions, Track, TrackOption
from ntirekit.jail.run import Limits
from ntirekit.measure.precision import channels_last_inputs, precision_label, timed_form

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
    timed = track in ("runtime", "overall")
    extra = options.extra or {}
    fp = fingerprint(device, precision=precision_label(str(extra.get("precision") or "fp32"),
                                                       bool(extra.get("channels_last", False))) if timed else "fp32")
    images_by_scale: dict[int, list[np.ndarray]] = {}
    pending: dict[str, tuple[Entry, nn.Module, dict[str, Any]]] = {}
    phase = f"{track}: export, check, count" + (" + memory" if timed else "")
    track_limits = run_limits(_BY_NAME[track], options)
    for entry in tqdm(entries, desc=phase, unit="entry", disable=not options.progress, leave=False):
        failed: list[dict[str, Any]] = []
        prepared: tuple[nn.Module, dict[str, Any]] | None = None
        with guard(entry, track, fp, failed):  # never yield inside guard: it would swallow GeneratorExit
            prepared = _prepare(entry, options, images_by_scale, timed, track_limits)
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
    """``timing N entries (names): about S s`` from each entry's check time (one graph forward per input),
    scaled by the number of timed calls."""
    runs = max(1, options.runs) * (options.warmup + options.repeats if options.timer == "robust" else 1)
    total = sum(fields.get("check_seconds", 0.0) * runs for _e, _m, fields in pending.values())
    names = ", ".join(list(pending)[:6]) + (", ..." if len(pending) > 6 else "")
    return f"timing {len(pending)} entr{'y' if len(pending) == 1 else 'ies'} ({names}; {options.timer} timer): " \
           f"about {total:.0f} s"


def _prepare(entry: Entry, options: EvalOptions, images_by_scale: dict[int, list[np.ndarray]],
             timed: bool, track_limits: Callable[[], Limits]) -> tuple[nn.Module, dict[str, Any]]:
    """Export, check, count (and measure the memory of) one entry (its jails bound by ``track_limits()``); raises on
    any failure."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the {options.track} track runs esr entries")
    extra = options.extra or {}
    scale = entry.spec.scale
    if timed and scale not in images_by_scale:
        images_by_scale[scale] = timing_images(options.data, scale, extra.get("images"), extra.get("crop"))
    images = images_by_scale[scale] if timed else []      # complexity: checked on the counting input only
    measured = measure_entry(entry, options, images, memory=timed and bool(extra.get("memory", True)),
                             limits=track_limits())
    fields = dict(measured.fields)
    fields.update(scale=entry.spec.scale, data_range=entry.spec.data_range)
    if timed and extra.get("memory", True):
        fields["memory_input"] = _input_label(options)
    return measured.model, fields


def _time_pending(pending: dict[str, tuple[Entry, nn.Module, dict[str, Any]]],
                  images_by_scale: dict[int, list[np.ndarray]], options: EvalOptions, device: torch.device,
                  fp: dict[str, Any], track: str) -> Iterator[dict[str, Any]]:
    extra = options.extra or {}
    models: dict[str, nn.Module] = {}
    inputs: dict[str, list[torch.Tensor]] = {}
    failed: list[dict[str, Any]] = []
    precision, channels_last = str(extra.get("precision") or "fp32"), bool(extra.get("channels_last", False))
    for name, (entry, model, _fields) in pending.items():
        with guard(entry, track, fp, failed):
            models[name] = timed_form(model.to(device), precision, channels_last)
            inputs[name] = entry_inputs(entry, options.data, device, images_by_scale[entry.spec.scale])
            if channels_last:
                inputs[name] = channels_last_inputs(inputs[name])
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
                      runtime_images=len(inputs[name]), precision=precision_label(precision, channels_last))
        yield record(name, track, fp, **fields)
    for _entry, model, _fields in pending.values():
        model.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()


def check_data(data: str, scale: int) -> None:
    """Open a timing dataset other than the built-in ``div2k-like`` (a bad ``--data`` is one error before counting)."""
    if data not in ("", DIV2K_LIKE):
        open_image_dataset(data, scale=scale)


_COUNT_FIELDS = ("params", "macs_ntire2022", "macs_fvcore", "activations", "activations_fvcore", "convs",
                 "input_shape", "warnings", "weights", "scale", "data_range", "max_memory_mib", "memory_kind",
                 "measured")
_TIMED_FIELDS = (*_COUNT_FIELDS, "runtime_ms", "timer", "runtime_input", "runtime_images")
_OPTIONAL_FIELDS = ("flops_torch", "functional_convs", "macs_ntire2022_missed", "activations_missed", "convs_missed",
                    "nvml_memory_mib", "memory_input", "seconds", "check_seconds", "form", "graph", "graph_id",
                    "sandbox", "limits", "output", "precision")
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
    TrackOption("precision", str, "fp32", "time under automatic mixed precision: amp-fp16 | amp-bf16 (the challenge "
                "times fp32; the precision is part of the device fingerprint, so such timings never rank with fp32)",
                "--precision"),
    TrackOption("channels_last", bool, False, "time with channels-last inputs and convolution weights",
                "--channels-last"),
    TrackOption("training_form", bool, False, "count and time re-parameterizable entries in their training form "
                "(default: merged into the deploy form first, as the challenge measures them)", "--training-form"),
)
TRACKS = (
    Track("runtime", evaluate, "esr", times=True, record_fields=_TIMED_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=RUNTIME + MEMORY, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True,
          check_data=check_data, description="runtime (timer statistics) and peak memory, with the counts"),
    Track("complexity", evaluate, "esr", times=False, record_fields=_COUNT_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=COUNTS, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True,
          check_data=check_data, description="params, MACs, activations, #conv on --input-shape"),
    Track("overall", evaluate, "esr", times=True, record_fields=_TIMED_FIELDS, optional_fields=_OPTIONAL_FIELDS,
          columns=RUNTIME + COUNTS + MEMORY, options=_OPTIONS, default_data=DIV2K_LIKE, leaderboard=True,
          check_data=check_data, description="runtime, memory and counts"),
)
_BY_NAME = {t.name: t for t in TRACKS}
