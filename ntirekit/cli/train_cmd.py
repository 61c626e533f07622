"""``ntirekit train ENTRY`` and ``ntirekit finetune ENTRY``: train an image SR entry on HR images."""

from __future__ import annotations

from typing import Any, Callable

import click

from ntirekit.cli.common import echo_err, entries_option, load_registry, one_line_errors


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--data", default="skimage", show_default=True,
                     help="HR training images: a folder, or 'skimage' (scikit-image's bundled photos outside the "
                          "embedded sample set). LR is made by the kit's MATLAB-exact bicubic."),
        click.option("--val", default="sample", show_default=True,
                     help="Validation dataset (any `eval --data` spec), or 'none'."),
        click.option("--val-protocol", type=click.Choice(["challenge", "paper"]), default="challenge",
                     show_default=True, help="PSNR protocol of the validation: RGB (challenge) or Y (paper)."),
        click.option("--val-limit", type=int, help="Validate on the first N images only."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False),
                     help="Write the best weights as an entry folder here."),
        click.option("--name", help="Name of the written entry (default: ENTRY_ft / ENTRY_trained)."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False),
                     help="Starting checkpoint (finetune: default the entry's own weights)."),
        click.option("--steps", type=int, default=1000, show_default=True, help="Optimiser steps."),
        click.option("--batch-size", type=int, default=16, show_default=True),
        click.option("--patch", "lr_patch", type=int, default=32, show_default=True, help="LR patch size (pixels)."),
        click.option("--lr", type=float, default=None, help="Peak learning rate [train: 5e-4, finetune: 1e-4]."),
        click.option("--min-lr", type=float, default=1e-6, show_default=True, help="Cosine schedule's final rate."),
        click.option("--loss", type=click.Choice(["l1", "charbonnier", "l2"]), default="l1", show_default=True),
        click.option("--val-every", type=int, default=100, show_default=True),
        click.option("--ckpt-every", type=int, default=100, show_default=True),
        click.option("--ckpt-dir", type=click.Path(file_okay=False),
                     help="Checkpoint folder (default: runs/NAME.ckpt, NAME being the written entry's name)."),
        click.option("--resume", is_flag=True, help="Continue from the checkpoint in the checkpoint folder."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ..."),
        click.option("--threads", type=int, help="torch CPU threads."),
        click.option("--force", is_flag=True, help="Overwrite a non-empty --out folder."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        entries_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(finetune: bool, entry_name: str, **kw: Any) -> None:
    import torch

    from ntirekit.train.image import ImageTrainOptions, default_ckpt_dir, train_image_entry
    from ntirekit.train.loop import TrainConfig

    if kw["threads"]:
        torch.set_num_threads(kw["threads"])
    entry = load_registry(kw["entry_roots"])[entry_name]
    lr = kw["lr"] if kw["lr"] is not None else (1e-4 if finetune else 5e-4)
    config = TrainConfig(steps=kw["steps"], lr=lr, min_lr=kw["min_lr"], val_every=kw["val_every"],
                         ckpt_every=kw["ckpt_every"], seed=kw["seed"], progress=not kw["no_progress"])
    options = ImageTrainOptions(data=kw["data"], val=None if kw["val"] == "none" else kw["val"],
                                val_protocol=kw["val_protocol"], val_limit=kw["val_limit"], lr_patch=kw["lr_patch"],
                                batch_size=kw["batch_size"], loss=kw["loss"], device=kw["device"], config=config)
    ckpt_dir = kw["ckpt_dir"] or default_ckpt_dir(entry, kw["name"], finetune)
    derived, result = train_image_entry(entry, kw["out_dir"], options, finetune=finetune, weights=kw["weights"],
                                        ckpt_dir=ckpt_dir, resume=kw["resume"], name=kw["name"],
                                        overwrite=kw["force"], log=echo_err)
    if result.best_metric is not None:
        click.echo(f"best validation PSNR {result.best_metric:.3f} dB at step {result.best_step} "
                   f"(start: {result.history[0]['val']:.3f} dB)")
    click.echo(f"checkpoint: {ckpt_dir}")
    if derived is not None:
        click.echo(f"{derived.name}: written to {derived.folder}")


@click.command("train")
@click.argument("entry_name", metavar="ENTRY")
@_options
@one_line_errors(ValueError, RuntimeError, OSError)
def train(entry_name: str, **kw: Any) -> None:
    """Train ENTRY from a (seeded) random initialisation on HR images: random patches, flips and rotations."""
    _run(False, entry_name, **kw)


@click.command("finetune")
@click.argument("entry_name", metavar="ENTRY")
@_options
@one_line_errors(ValueError, RuntimeError, OSError)
def finetune(entry_name: str, **kw: Any) -> None:
    """Fine-tune ENTRY from its weights (or --weights) on HR images; the best weights become an entry folder."""
    _run(True, entry_name, **kw)
