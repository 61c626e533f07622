"""``ntirekit profile ENTRY``: params, FLOPs (2022 counter and fvcore), activations, #conv; runtime and memory on demand."""

from __future__ import annotations

import json
from typing import Any

import click
import torch
from tabulate import tabulate

from ntirekit.cli.common import echo_err, echo_json, entries_option, json_output, load_registry, one_line_errors, \
    parse_shape, trust_option
from ntirekit.core.device import fingerprint, fingerprint_id, resolve_device
from ntirekit.core.errors import OptionError
from ntirekit.core.records import _finite, _json_default
from ntirekit.core.spec import input_contract
from ntirekit.data.timing import DIV2K_LIKE, timing_images
from ntirekit.eval.limits import jail_limits
from ntirekit.eval.measure_graph import measure_entry
from ntirekit.eval.pipeline import entry_inputs, load_for_measurement, macs_per_frame, measured_form, time_entries
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import get_track
from ntirekit.measure.counts import count
from ntirekit.measure.runtime import fixed_threads


def video_input_shape(entry: Any) -> tuple[int, int, int, int, int]:
    """The clip a video entry is counted on: ``spec.frames`` frames at its declared smallest input size."""
    contract = input_contract(entry)
    size = contract.padded(contract.min_size, contract.min_size)[0]
    return (1, max(contract.frames, 2), 3, size, size)


def profile_entry(name: str, *, entry_roots: tuple[str, ...] = (), input_shape: tuple[int, ...] = (1, 3, 256, 256),
                  runtime: bool = False, memory: bool = False, device: str = "auto", timer: str = "robust",
                  data: str = DIV2K_LIKE, warmup: int = 3, repeats: int = 5, threads: int | None = None,
                  weights: str | None = None, training_form: bool = False) -> dict[str, Any]:
    """The profile of one entry as a plain dict (what ``--json`` prints). An image entry is measured on its exported
    graph exactly as the ``complexity`` track measures it (:func:`ntirekit.eval.measure_graph.measure_entry`: its
    code in the jail when untrusted, the graph checked against its outputs, counted and timed by the kit); a video
    entry (trusted only) on its eager module."""
    entry = load_registry(entry_roots)[name]
    dev = resolve_device(device)
    if entry.spec.track == "vqe":
        return _profile_video(entry, input_shape, runtime or memory, weights, training_form, dev)
    options = EvalOptions(track="complexity", device=str(dev), input_shape=tuple(input_shape),
                          weights={entry.name: weights} if weights else {}, progress=False,
                          extra={"training_form": training_form})
    images = timing_images(data, scale=entry.spec.scale) if (runtime or memory) else []
    measured = measure_entry(entry, options, images, memory=memory,
                             limits=jail_limits(get_track("complexity"), options))
    out: dict[str, Any] = {"entry": entry.name, **measured.fields}
    with fixed_threads(threads if dev.type == "cpu" else None):
        out["device"] = fingerprint(dev)
        out["device_id"] = fingerprint_id(out["device"])
        if runtime or memory:
            out["data"] = data
            out["images"] = len(images)
            out["input"] = input_label(data, images)
        if runtime:
            model = measured.model.to(dev)
            out["runtime_ms"] = time_entries({entry.name: model}, {entry.name: entry_inputs(entry, data, dev, images)},
                                             timer=timer, device=dev, warmup=warmup, repeats=repeats)[entry.name]
            model.to("cpu")
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _profile_video(entry: Any, input_shape: tuple[int, ...], timed: bool, weights: str | None, training_form: bool,
                   dev: torch.device) -> dict[str, Any]:
    """A video entry's counts on its eager module (its code runs here: trusted entries only, by the door)."""
    if timed:
        raise OptionError(f"{entry.name} is a video entry: time it on clips with 'ntirekit eval --track vqe'")
    model, weights_kind = load_for_measurement(entry, weights)
    form = measured_form(model, training_form)
    if len(input_shape) == 4:
        input_shape = video_input_shape(entry)
    counts = count(model, input_shape)
    out = {"entry": entry.name, "weights": weights_kind, **({"form": form} if form else {}), **counts.to_dict(),
           "macs_per_frame": macs_per_frame(model, input_shape[-2], input_shape[-1]), "measured": "eager"}
    out["device"] = fingerprint(dev)
    out["device_id"] = fingerprint_id(out["device"])
    return out


def input_label(data: str, images: list[Any]) -> str:
    """What ``--runtime``/``--memory`` ran on: ``div2k-like: 6 LR images of 4 sizes (HxW): 322x510, 339x510, 510x347
    and 1 more``."""
    shapes = list(dict.fromkeys(f"{img.shape[0]}x{img.shape[1]}" for img in images))
    sizes = ", ".join(shapes[:3]) + (f" and {len(shapes) - 3} more" if len(shapes) > 3 else "")
    kinds = f"of {len(shapes)} sizes" if len(shapes) > 1 else "of size"
    return f"{data}: {len(images)} LR image{'s' if len(images) != 1 else ''} {kinds} (HxW): {sizes}"


def _fmt(value: Any, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value / scale)


def render(profile: dict[str, Any]) -> str:
    """A readable two-column table of a profile."""
    shape = "x".join(str(s) for s in profile["input_shape"])
    rows = [
        ["Params [M]", f"{profile['params'] / 1e6:.4f}  ({profile['params']:,})"],
        ["FLOPs [G] (2022)", _fmt(profile["macs_ntire2022"], 1e9, "{:.4f}")],
        ["FLOPs [G] (fvcore)", _fmt(profile["macs_fvcore"], 1e9, "{:.4f}")],
        ["Acts [M]", _fmt(profile["activations"], 1e6, "{:.4f}")],
        ["Acts [M] (fvcore)", _fmt(profile["activations_fvcore"], 1e6, "{:.4f}")],
        ["#Conv", str(profile["convs"])],
    ]
    if profile.get("macs_per_frame") is not None:
        rows.append(["FLOPs [G] per frame (fvcore)", _fmt(profile["macs_per_frame"], 1e9, "{:.4f}")])
    if profile.get("flops_torch") is not None:
        rows.append(["FLOPs [G] (torch, 2/MAC)", _fmt(profile["flops_torch"], 1e9, "{:.4f}")])
    rt = profile.get("runtime_ms")
    if rt:
        head = "mean" if rt["timer"] == "ntire" else "median"
        rows.append([f"Runtime [ms] ({rt['timer']} {head})", f"{rt[head]:.2f}"])
        rows.append(["Runtime spread", f"IQR {rt['iqr']:.2f} ms, CV {rt['cv']:.3f}, min {rt['min']:.2f} ms, "
                                       f"n {rt['n']}"])
    missed = profile.get("macs_ntire2022_missed")
    if missed:
        rows.insert(2, ["FLOPs [G] (2022) missed", f"{missed / 1e9:.4f} in {profile.get('convs_missed')} convs the "
                                                   "official counter cannot see (ranked with them)"])
    if profile.get("input") and (rt or profile.get("memory_kind")):
        rows.append(["Timed on" if rt else "Measured on", profile["input"]])
    if profile.get("memory_kind"):
        rows.append([f"Memory [MiB] ({profile['memory_kind']})", _fmt(profile["max_memory_mib"])])
        if profile.get("nvml_memory_mib") is not None:
            rows.append(["Memory [MiB] (NVML, process)", _fmt(profile["nvml_memory_mib"])])
    form = f", {profile['form']} form" if profile.get("form") else ""
    measured = "exported graph" if profile.get("measured") == "graph" else "eager module"
    lines = [f"{profile['entry']}  (input {shape}, weights {profile['weights']}{form}, {measured}, "
             f"{profile['device_id']})",
             tabulate(rows, tablefmt="simple", disable_numparse=True)]
    if profile.get("warnings"):
        lines.append("")
        lines += [f"warning: {w}" for w in profile["warnings"]]
    return "\n".join(lines)


@click.command("profile")
@click.argument("entry")
@entries_option
@trust_option
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.option("--input-shape", default="1,3,256,256", show_default=True,
              callback=lambda c, p, v: parse_shape(v, (4, 5)),
              help="N,C,H,W input for counting FLOPs, activations and #conv (video entries: N,T,C,H,W; "
                   "default: their frames at their smallest size).")
@click.option("--runtime", is_flag=True, help="Also time the entry on --data images.")
@click.option("--memory", is_flag=True, help="Also measure peak memory on --data images.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--timer", type=click.Choice(["robust", "ntire"]), default="robust", show_default=True,
              help="robust: warm-up, repeats, median; ntire: the official loop (no warm-up, mean).")
@click.option("--data", default=DIV2K_LIKE, show_default=True,
              help="Images for --runtime/--memory: 'div2k-like', 'sample' (the embedded photos) or a folder.")
@click.option("--warmup", type=int, default=3, show_default=True, help="Warm-up runs (robust timer).")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs per image (robust timer).")
@click.option("--threads", type=int, default=None, help="CPU threads while timing (default: torch's).")
@click.option("--weights", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Checkpoint to load instead of the entry's own.")
@click.option("--training-form", is_flag=True,
              help="Measure re-parameterizable blocks in their training form (default: merged, the deploy form).")
@one_line_errors()
@json_output
def profile(entry: str, entry_roots: tuple[str, ...], as_json: bool, input_shape: tuple[int, ...], runtime: bool,
            memory: bool, device: str, timer: str, data: str, warmup: int, repeats: int, threads: int | None,
            weights: str | None, training_form: bool) -> None:
    """Count (and optionally time) one entry, on its exported graph (an untrusted entry's code runs in the sandbox).

    \b
    ntirekit profile rlfn_ntire
    ntirekit profile imdn_baseline --runtime --memory --device cpu --threads 4
    ntirekit profile span --json --input-shape 1,3,128,128
    """
    result = profile_entry(entry, entry_roots=entry_roots, input_shape=input_shape, runtime=runtime, memory=memory,
                           device=device, timer=timer, data=data, warmup=warmup, repeats=repeats, threads=threads,
                           weights=weights, training_form=training_form)
    if as_json:
        echo_json(json.dumps(_finite(result), indent=2, default=_json_default))
    else:
        click.echo(render(result))
        if result["device"]["kind"] == "cpu" and (runtime or memory):
            echo_err("note: CPU figures (runtime on CPU, memory estimated) are not comparable with GPU figures.")
