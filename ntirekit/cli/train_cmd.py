"""``ntirekit train ENTRY`` and ``ntirekit finetune ENTRY``: train an image SR entry on HR images, or a video QE entry
(``track = "vqe"``) on compressed/clean clip pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from ntirekit.cli.common import echo_err, entries_option, load_registry, one_line_errors, trust_option
from ntirekit.train.image import ImageTrainOptions, default_ckpt_dir, train_image_entry
from ntirekit.train.loop import BEST_WEIGHTS, CHECKPOINT, TrainConfig, TrainResult
from ntirekit.train.video import VideoTrainOptions, train_video_entry
from ntirekit.train.presets import apply_preset, get_preset

#: options that only video entries take, with the value that means "not given"
VIDEO_ONLY = {"frames": None, "val_frames": None, "grow_from": None, "identity_init": False, "kaiming_init": False,
              "zero_flow": False,
              "fix_flow": 0, "no_reverse": False, "stop_after": None}
#: options that only image entries take
IMAGE_ONLY = {"val_protocol": "challenge", "val_limit": None}


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--preset", default=None, metavar="NAME",
                     help="A named recipe filling every option not given here (cpu-small: a small BasicVSR++ / "
                          "PQF-BasicVSR++ with DIS flows for one CPU core; see ntirekit.train.presets)."),
        click.option("--data", default=None,
                     help="Training data. Image entries: HR images, a folder or 'skimage' (scikit-image's bundled "
                          "photos outside the embedded sample set; the default), LR made by the kit's MATLAB-exact "
                          "bicubic. Video entries: compressed/clean clip pairs, the output of `ntirekit data "
                          "compress` or a folder with lq/ and gt/ (required)."),
        click.option("--val", default=None,
                     help="Validation data, or 'none'. Image entries: any `eval --data` spec (default 'sample'); "
                          "video entries: clip pairs as for --data, scored by ΔPSNR (default none)."),
        click.option("--val-protocol", type=click.Choice(["challenge", "paper"]), default="challenge",
                     show_default=True, help="Image entries: PSNR protocol of the validation, RGB or Y."),
        click.option("--val-limit", type=int, help="Image entries: validate on the first N images only."),
        click.option("--val-frames", type=click.IntRange(min=2), help="Video entries: validate on the first N frames."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False),
                     help="Write the best weights as an entry folder here."),
        click.option("--name", help="Name of the written entry (default: ENTRY_ft / ENTRY_trained)."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False),
                     help="Starting checkpoint (finetune: default the entry's own weights)."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Model argument replacing the entry's (repeatable; TOML values: 16, 0.5, true, \"s\"), "
                          "e.g. --set mid_channels=16 --set num_blocks=2. Written into the output entry."),
        click.option("--steps", type=int, default=1000, show_default=True, help="Optimiser steps."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Patches (image) or sequences (video) per step [image: 16, video: 1]."),
        click.option("--patch", "patch", type=click.IntRange(min=1), default=None,
                     help="Image: LR patch size [32]. Video: square crop of every frame [256; BasicVSR++ QE models "
                          "need >= 256 with SPyNet, >= 32 with flow=\"dis\" or \"zero\", a multiple of 4]."),
        click.option("--frames", type=click.IntRange(min=2), default=None,
                     help="Video entries: frames per training sequence [the entry's `frames`]."),
        click.option("--no-reverse", is_flag=True, help="Video entries: no temporally reversed sequences."),
        click.option("--lr", type=float, default=None, help="Peak learning rate [train: 5e-4, finetune: 1e-4]."),
        click.option("--min-lr", type=float, default=1e-6, show_default=True, help="Cosine schedule's final rate."),
        click.option("--loss", type=click.Choice(["l1", "charbonnier", "l2"]), default=None,
                     help="Loss [image: l1, video: charbonnier]."),
        click.option("--then-loss", type=click.Choice(["l1", "charbonnier", "l2"]), default=None,
                     help="Switch to this loss at --switch-at (e.g. charbonnier then l2, the NTIRE 2022 VQE winner's "
                          "schedule)."),
        click.option("--switch-at", type=float, default=0.7, show_default=True,
                     help="Where --then-loss starts: a fraction of --steps (< 1) or a step number (>= 1)."),
        click.option("--grow-from", type=click.Path(exists=True, dir_okay=False),
                     help="Video entries: start from a shallower model's weights (fewer residual blocks; see "
                          "--set); the new blocks start as identities, so the deeper model starts equal to it."),
        click.option("--identity-init/--no-identity-init", default=False,
                     help="Video `train`: zero conv_last, so the network starts as the identity (output = input)."),
        click.option("--kaiming-init/--no-kaiming-init", default=False,
                     help="Video `train`: He-normal init of the convolutions outside residual blocks (features carry "
                          "the image from step 0 when training from scratch)."),
        click.option("--zero-flow", is_flag=True,
                     help="Video `train`: zero the last conv of every SPyNet level (flows start at 0; no pretrained "
                          "SPyNet weights are staged)."),
        click.option("--fix-flow", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Video entries: keep the flow network frozen for the first N steps (upstream: 5000)."),
        click.option("--val-every", type=int, default=100, show_default=True),
        click.option("--ckpt-every", type=int, default=100, show_default=True, help="Checkpoint every N steps."),
        click.option("--save-minutes", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
                     help="Also write the checkpoint and the best weights at least this often [minutes of wall "
                          "time], whatever --steps is (and when stopped with Ctrl-C or SIGTERM)."),
        click.option("--ckpt-dir", type=click.Path(file_okay=False),
                     help="Checkpoint folder (default: runs/NAME.ckpt, NAME being the written entry's name)."),
        click.option("--resume", is_flag=True, help="Continue from the checkpoint in the checkpoint folder."),
        click.option("--stop-after", type=click.IntRange(min=1), default=None,
                     help="Video entries: stop after step N as if cut (checkpoint written; --resume continues to "
                          "--steps with the same result as an uncut run)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ..."),
        click.option("--threads", type=int, help="torch CPU threads."),
        click.option("--force", is_flag=True, help="Overwrite a non-empty --out folder."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        entries_option,
        trust_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_settings(settings: tuple[str, ...]) -> dict[str, Any]:
    """``("mid_channels=16", "name=x")`` -> ``{"mid_channels": 16, "name": "x"}`` (TOML values; bare words are
    strings)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    out: dict[str, Any] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key.isidentifier() or not text:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def _given(kw: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    return ["--" + k.replace("_", "-") for k, unset in defaults.items() if kw[k] != unset]


def _config(finetune: bool, kw: dict[str, Any]) -> Any:
    lr = kw["lr"] if kw["lr"] is not None else (1e-4 if finetune else 5e-4)
    return TrainConfig(steps=kw["steps"], lr=lr, min_lr=kw["min_lr"], val_every=kw["val_every"],
                       ckpt_every=kw["ckpt_every"], seed=kw["seed"], progress=not kw["no_progress"],
                       save_every_s=60.0 * kw["save_minutes"])


def _val(value: str | None, default: str | None) -> str | None:
    if value is None:
        return default
    return None if value == "none" else value


def _with_preset(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options with the preset's values where none was given on the command line, and the model settings."""
    settings = parse_settings(kw["settings"])
    if kw["preset"] is None:
        return kw, settings
    ctx = click.get_current_context()
    return apply_preset(get_preset(kw["preset"]), kw,
                        lambda name: ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None), settings)


def _preset_tracks(name: str) -> tuple[str, ...]:
    return get_preset(name).tracks


def _run(finetune: bool, entry_name: str, **kw: Any) -> None:
    import torch

    kw, overrides = _with_preset(kw)
    if kw["threads"]:
        torch.set_num_threads(kw["threads"])
    entry = load_registry(kw["entry_roots"])[entry_name]
    video = entry.spec.track == "vqe"
    if kw["preset"] is not None and entry.spec.track not in _preset_tracks(kw["preset"]):
        raise click.UsageError(f"preset {kw['preset']} does not apply to {entry.name} ({entry.spec.track} track)")
    wrong = _given(kw, IMAGE_ONLY if video else VIDEO_ONLY)
    if wrong:
        kind = "a video" if video else "an image"
        raise click.UsageError(f"{entry.name} is {kind} entry: {', '.join(wrong)} do not apply to it")
    ckpt_dir = kw["ckpt_dir"] or default_ckpt_dir(entry, kw["name"], finetune)
    common = dict(finetune=finetune, weights=kw["weights"], ckpt_dir=ckpt_dir, resume=kw["resume"], name=kw["name"],
                  overwrite=kw["force"], log=echo_err)
    if video:
        if not kw["data"]:
            raise click.UsageError("video entries train on clip pairs: give --data (the output of `ntirekit data "
                                   "compress`, or a folder with lq/ and gt/)")
        options = VideoTrainOptions(
            data=kw["data"], val=_val(kw["val"], None), val_frames=kw["val_frames"], frames=kw["frames"],
            patch=kw["patch"] or 256, batch_size=kw["batch_size"] or 1, reverse=not kw["no_reverse"],
            loss=kw["loss"] or "charbonnier", then_loss=kw["then_loss"], switch_at=kw["switch_at"],
            overrides=overrides, grow_from=kw["grow_from"], identity_init=kw["identity_init"],
            kaiming_init=kw["kaiming_init"],
            zero_flow=kw["zero_flow"], fix_flow=kw["fix_flow"], device=kw["device"], stop_after=kw["stop_after"],
            config=_config(finetune, kw))
        derived, result = train_video_entry(entry, kw["out_dir"], options, **common)
        metric = "ΔPSNR"
    else:
        options_i = ImageTrainOptions(
            data=kw["data"] or "skimage", val=_val(kw["val"], "sample"), val_protocol=kw["val_protocol"],
            val_limit=kw["val_limit"], lr_patch=kw["patch"] or 32, batch_size=kw["batch_size"] or 16,
            loss=kw["loss"] or "l1", then_loss=kw["then_loss"], switch_at=kw["switch_at"], overrides=overrides,
            device=kw["device"], config=_config(finetune, kw))
        derived, result = train_image_entry(entry, kw["out_dir"], options_i, **common)
        metric = "PSNR"
    click.echo(summary(result, metric, Path(ckpt_dir), derived, kw["steps"]))
    if result.stopped_by is not None:
        raise SystemExit(130 if result.stopped_by == "SIGINT" else 143)


def summary(result: TrainResult, metric: str, ckpt_dir: Path, derived: Any, steps: int) -> str:
    """The closing lines of train/finetune: how it ended, the final loss, the best validation, where the files are."""
    pace = f" in {result.seconds:.0f} s ({result.seconds / result.steps_run:.2f} s per step)" if result.steps_run \
        else ""
    loss = "no step taken" if result.final_loss is None else f"final loss {result.final_loss:.5g} (running mean)"
    if result.stopped_by is not None:
        head = (f"stopped by {result.stopped_by} at step {result.step} of {steps}{pace}; {loss}; the same command "
                f"with --resume continues from step {result.step}")
    elif result.finished:
        head = f"finished {steps} steps ({result.steps_run} in this run{pace}); {loss}"
    else:
        head = f"stopped after step {result.step} of {steps}{pace}; {loss}; --resume continues"
    lines = [head]
    if result.best_metric is not None:
        lines.append(f"best validation {metric} {result.best_metric:.3f} dB at step {result.best_step} "
                     f"(start: {result.history[0]['val']:.3f} dB)")
    lines.append(f"checkpoint: {ckpt_dir / CHECKPOINT}; best weights so far: {ckpt_dir / BEST_WEIGHTS}")
    if derived is not None:
        lines.append(f"{derived.name}: written to {derived.folder}")
    return "\n".join(lines)


_ERRORS = (OSError,)


@click.command("train")
@click.argument("entry_name", metavar="ENTRY")
@_options
@one_line_errors(*_ERRORS)
def train(entry_name: str, **kw: Any) -> None:
    """Train ENTRY from a (seeded) random initialisation: an image entry on HR images (random patches, flips and
    rotations), a video entry on compressed/clean clip pairs (random crops of N-frame sequences, flips, rotations,
    reversal; duplicate frames dropped)."""
    _run(False, entry_name, **kw)


@click.command("finetune")
@click.argument("entry_name", metavar="ENTRY")
@_options
@one_line_errors(*_ERRORS)
def finetune(entry_name: str, **kw: Any) -> None:
    """Fine-tune ENTRY from its weights (or --weights); the best weights become an entry folder."""
    _run(True, entry_name, **kw)
