"""Runtime of entries: the official NTIRE loop, and a robust interleaved timer.

Two timers, both in milliseconds, both timing ``model(x)`` only (inputs are on the device before timing starts):

``ntire``
    The official harness's loop reproduced: one image at a time, no warm-up, ``cudnn.benchmark = False``, CUDA events
    around ``model(x)``, ``torch.cuda.synchronize()``, mean over the images. On CPU the same loop with
    ``time.perf_counter``. Entries are timed one after the other. The first image carries the start-up cost (CUDA
    context, cuDNN heuristics, allocator growth), exactly as in the challenge; in one process only the first entry
    pays the CUDA context creation, while each team's run in the challenge paid it.

``robust`` (default)
    ``warmup`` untimed runs per entry, then ``repeats`` timed runs per input; entries are interleaved round-robin
    (for each input, for each repeat, for each entry) so that clock drift and thermal state hit every entry alike.
    CUDA events (with a synchronize before and after) on GPU; ``time.perf_counter_ns`` and a fixed thread count
    (``torch.set_num_threads``) on CPU; ``torch.inference_mode()``. Per entry: median and dispersion over all timings.

The result per entry is ``{"median", "mean", "total", "iqr", "cv", "min", "max", "timer", "n", "unit": "ms"}``; ``cv`` is the
population standard deviation (``ddof=0``) over the mean, ``iqr`` the 75th minus the 25th percentile (numpy's default
linear interpolation). For the ``ntire`` timer the headline figure is ``mean``, for ``robust`` it is ``median``
(:func:`headline`). ``total`` is the sum of the timings.

Only the kit's own code runs here: what is timed is an entry's exported graph (:mod:`ntirekit.eval.measure_graph`)
or a trusted entry's module, never a process the entry controls.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ntirekit.core.errors import OptionError

TIMERS = ("robust", "ntire")

Model = Callable[[torch.Tensor], Any]

def summarize(times_ms: Sequence[float], timer: str) -> dict[str, Any]:
    """The statistics of a list of timings (milliseconds)."""
    a = np.asarray(list(times_ms), dtype=np.float64)
    if a.size == 0:
        raise ValueError("no timings to summarize")
    mean = float(a.mean())
    q75, q25 = np.percentile(a, [75, 25])
    return {"median": float(np.median(a)), "mean": mean, "total": float(a.sum()), "iqr": float(q75 - q25),
            "cv": float(a.std(ddof=0) / mean) if mean > 0 else float("nan"), "min": float(a.min()),
            "max": float(a.max()), "timer": timer, "n": int(a.size), "unit": "ms"}


def headline(stats: Mapping[str, Any]) -> float:
    """The figure a table shows: the mean for the ``ntire`` timer (as the challenge reports), else the median."""
    return float(stats["mean"] if stats.get("timer") == "ntire" else stats["median"])


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Pin ``torch.set_num_threads`` for the block (``None``: keep the current count, but pin it all the same)."""
    before = torch.get_num_threads()
    n = int(threads) if threads else before
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def cudnn_benchmark(flag: bool) -> Iterator[None]:
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = flag
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class _Clock:
    """One timing of ``fn()``: CUDA events on a CUDA device, ``perf_counter_ns`` (or ``perf_counter``) on CPU."""

    def __init__(self, device: torch.device, sync_before: bool, cpu_clock: str = "perf_counter_ns"):
        self.cuda = device.type == "cuda"
        self.sync_before = sync_before
        self.cpu_clock = cpu_clock
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)

    def time(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            if self.sync_before:
                torch.cuda.synchronize()
            self.start.record()
            fn()
            self.end.record()
            torch.cuda.synchronize()
            return float(self.start.elapsed_time(self.end))
        if self.cpu_clock == "perf_counter":
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6


def _device_of(inputs: Mapping[str, Sequence[torch.Tensor]], device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for xs in inputs.values():
        for x in xs:
            return x.device
    return torch.device("cpu")


def _per_entry_inputs(models: Mapping[str, Model], inputs: Sequence[torch.Tensor] | Mapping[str, Sequence[torch.Tensor]]
                      ) -> dict[str, Sequence[torch.Tensor]]:
    """The same inputs for every entry, or one list per entry (entries with different ``data_range``)."""
    if isinstance(inputs, Mapping):
        missing = set(models) - set(inputs)
        if missing:
            raise KeyError(f"no inputs for {sorted(missing)}")
        per = {name: inputs[name] for name in models}
    else:
        per = {name: inputs for name in models}
    lengths = {len(v) for v in per.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("every entry needs the same, non-zero number of inputs")
    return per


def time_ntire(models: Mapping[str, Model], inputs: Sequence[torch.Tensor] | Mapping[str, Sequence[torch.Tensor]],
               *, device: str | torch.device | None = None, threads: int | None = None,
               errors: dict[str, BaseException] | None = None,
               tick: Callable[[], Any] | None = None) -> dict[str, dict[str, Any]]:
    """The official loop, entry after entry: per entry the stats of its per-image times (headline: ``mean``).

    An entry that raises is left out of the result and its exception stored in ``errors`` (when given) or raised.
    ``tick`` (a progress bar's update) is called after each timed call, outside the timed region.
    """
    per = _per_entry_inputs(models, inputs)
    dev = _device_of(per, device)
    clock = _Clock(dev, sync_before=False, cpu_clock="perf_counter")
    out: dict[str, dict[str, Any]] = {}
    with fixed_threads(threads if dev.type == "cpu" else None), cudnn_benchmark(False), torch.no_grad():
        for name, model in models.items():
            try:
                times = []
                for x in per[name]:
                    times.append(clock.time(lambda: model(x)))
                    if tick is not None:
                        tick()
            except Exception as exc:
                if errors is None:
                    raise
                errors[name] = exc
                continue
            out[name] = summarize(times, "ntire")
            out[name]["per_input"] = times
    return out


def timed_calls(models: Mapping[str, Any], inputs: Mapping[str, Sequence[Any]], timer: str,
                repeats: int = 5) -> int:
    """How many timed calls one run of ``timer`` makes (the total of a progress bar; warm-up not included)."""
    return sum(len(inputs[n]) for n in models) * (repeats if timer == "robust" else 1)


def robust_order(names: Sequence[str], n_inputs: int, repeats: int) -> Iterator[tuple[int, int, str]]:
    """The interleaved timing order: ``(input index, repeat, entry)`` for each input, each repeat, each entry."""
    for i in range(n_inputs):
        for r in range(repeats):
            for name in names:
                yield i, r, name


def time_robust(models: Mapping[str, Model], inputs: Sequence[torch.Tensor] | Mapping[str, Sequence[torch.Tensor]],
                *, warmup: int = 3, repeats: int = 5, device: str | torch.device | None = None,
                threads: int | None = None, benchmark: bool = False,
                errors: dict[str, BaseException] | None = None,
                tick: Callable[[], Any] | None = None) -> dict[str, dict[str, Any]]:
    """Warm-up, then round-robin timing of every entry on every input ``repeats`` times; stats per entry.

    An entry that raises is dropped from the rotation (its exception stored in ``errors`` when given, else raised);
    the others go on. ``tick`` (a progress bar's update) is called after each timed call, outside the timed region.
    """
    if repeats < 1:
        raise OptionError("repeats must be >= 1")
    per = _per_entry_inputs(models, inputs)
    dev = _device_of(per, device)
    clock = _Clock(dev, sync_before=True)
    names = list(models)
    alive = set(names)
    times: dict[str, list[float]] = {n: [] for n in names}

    def fail(name: str, exc: BaseException) -> None:
        if errors is None:
            raise exc
        errors[name] = exc
        alive.discard(name)

    with fixed_threads(threads if dev.type == "cpu" else None), cudnn_benchmark(benchmark), torch.inference_mode():
        for w in range(max(0, warmup)):
            for name in names:
                if name in alive:
                    try:
                        models[name](per[name][w % len(per[name])])
                    except Exception as exc:
                        fail(name, exc)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        n_inputs = len(next(iter(per.values())))
        for i, _r, name in robust_order(names, n_inputs, repeats):
            if name not in alive:
                continue
            model, x = models[name], per[name][i]
            try:
                times[name].append(clock.time(lambda: model(x)))
            except Exception as exc:
                fail(name, exc)
            if tick is not None:
                tick()
    return {n: summarize(times[n], "robust") for n in names if n in alive}


def time_models(models: Mapping[str, Model], inputs: Sequence[torch.Tensor] | Mapping[str, Sequence[torch.Tensor]],
                timer: str = "robust", **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Dispatch to :func:`time_robust` or :func:`time_ntire` (``warmup``/``repeats``/``benchmark`` only for robust)."""
    if timer == "robust":
        return time_robust(models, inputs, **kwargs)
    if timer == "ntire":
        for key in ("warmup", "repeats", "benchmark"):
            kwargs.pop(key, None)
        return time_ntire(models, inputs, **kwargs)
    raise OptionError(f"unknown timer {timer!r} (known: {', '.join(TIMERS)})")


def pool_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several whole runs of one entry in one figure (NTIRE 2024 on averaged 5 runs per model).

    The statistics are taken over the runs' headline figures (so ``cv`` and ``iqr`` describe the run-to-run spread):
    the ``ntire`` headline becomes the mean of the run means, the ``robust`` one the median of the run medians.
    ``runs`` lists the per-run figures, ``n`` counts every timing of every run.
    """
    if len(runs) == 1:
        return dict(runs[0])
    heads = [headline(r) for r in runs]
    stats = summarize(heads, str(runs[0]["timer"]))
    stats["runs"] = heads
    stats["n_runs"] = len(runs)
    stats["total"] = float(sum(float(r["total"]) for r in runs if "total" in r))
    stats["n"] = int(sum(int(r["n"]) for r in runs))
    return stats
