"""Training and fine-tuning image SR entries: the glue between an entry, :class:`SRPatchSource` and :class:`Trainer`.

The model sees pixels in the entry's ``data_range`` (as in evaluation); the loss compares output and target divided by
``data_range`` (so ``lr`` and the loss values mean the same for 1.0 and 255.0 entries). Validation is the PSNR of the
uint8 output on an image dataset (``ntirekit.quality.psnr``, challenge RGB or paper Y protocol, ``border = scale``),
run exactly as ``ntirekit eval`` runs it. The best weights (highest validation PSNR; the last ones without validation)
are written as an entry folder derived from the trained entry (:func:`ntirekit.train.derive.write_entry_folder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ntirekit.core.device import resolve_device
from ntirekit.core.spec import Entry, EntryError
from ntirekit.core.weights import load_state_dict
from ntirekit.data.images import open_image_dataset
from ntirekit.eval.inference import upscale_image
from ntirekit.quality import psnr
from ntirekit.train.data import SRPatchSource, load_hr_images
from ntirekit.train.derive import write_entry_folder
from ntirekit.train.loop import TrainConfig, Trainer, TrainResult, weights_origin
from ntirekit.train.losses import staged_loss

__all__ = ["ImageTrainOptions", "psnr_validator", "train_image_entry", "model_for_training"]


@dataclass
class ImageTrainOptions:
    data: str = "skimage"                # HR images: "skimage" or a folder
    val: str | None = "sample"           # validation dataset spec (open_image_dataset) or None
    val_protocol: str = "challenge"      # challenge (RGB) | paper (Y)
    val_limit: int | None = None         # only the first N validation images
    lr_patch: int = 32
    batch_size: int = 16
    loss: str = "l1"
    then_loss: str | None = None         # a second loss from step switch_at on (StagedLoss)
    switch_at: float = 0.7               # fraction of the steps (< 1) or step number (>= 1)
    overrides: dict[str, Any] = field(default_factory=dict)   # model kwargs replacing the entry's (--set)
    device: str = "auto"
    config: TrainConfig = field(default_factory=TrainConfig)


def psnr_validator(dataset_spec: str, scale: int, data_range: float, device: torch.device, protocol: str = "challenge",
                   limit: int | None = None) -> Callable[[nn.Module], float]:
    """``validate(model) -> mean PSNR`` over the dataset (images loaded once)."""
    dataset = open_image_dataset(dataset_spec, scale=scale)
    pairs = [dataset[i] for i in range(len(dataset) if limit is None else min(limit, len(dataset)))]
    if any(p.hr is None for p in pairs):
        raise EntryError(f"validation set {dataset_spec} has images without HR")

    def validate(model: nn.Module) -> float:
        values = [psnr(upscale_image(model, p.lr, scale=scale, data_range=data_range, device=device), p.hr,
                       protocol=protocol, border=scale) for p in pairs]
        return sum(values) / len(values)

    return validate


def train_image_entry(entry: Entry, out_dir: str | os.PathLike | None, options: ImageTrainOptions, *,
                      finetune: bool, weights: str | os.PathLike | None = None, ckpt_dir: str | os.PathLike | None = None,
                      resume: bool = False, name: str | None = None, overwrite: bool = False,
                      log: Callable[[str], None] | None = None) -> tuple[Entry | None, TrainResult]:
    """Train (from a seeded random initialisation) or fine-tune (from the entry's or the given weights) ``entry``.

    Writes the best weights as an entry folder at ``out_dir`` (when given and the run finished).
    """
    if entry.spec.track != "esr" or entry.spec.task != "sr":
        raise EntryError(f"{entry.name}: image training needs an esr/sr entry (got {entry.spec.track}/{entry.spec.task})")
    log = log or (lambda message: None)
    device = resolve_device(options.device)
    scale, data_range = entry.spec.scale, entry.spec.data_range
    torch.manual_seed(options.config.seed)
    model = model_for_training(entry, finetune=finetune, weights=weights, overrides=options.overrides)
    source = SRPatchSource(load_hr_images(options.data), scale, lr_patch=options.lr_patch,
                           batch_size=options.batch_size, data_range=data_range)
    log(f"training data: {source}")
    loss = staged_loss(options.loss, options.then_loss, options.switch_at, options.config.steps, scale=data_range)

    validate = None
    if options.val:
        validate = psnr_validator(options.val, scale, data_range, device, options.val_protocol, options.val_limit)
    trainer = Trainer(model, source, loss, options.config, validate=validate, ckpt_dir=ckpt_dir, device=device, log=log)
    if resume:
        if not trainer.resume():
            log("no checkpoint to resume from: starting at step 0")
    result = trainer.run()
    derived = None
    if out_dir is not None and result.finished:
        what = "fine-tuned" if finetune else "trained"
        best = (f"best validation PSNR {result.best_metric:.3f} dB ({options.val_protocol}, {options.val}) at step "
                f"{result.best_step}" if result.best_metric is not None else f"weights after step {result.step}")
        description = (f"{entry.name} {what} by `ntirekit {'finetune' if finetune else 'train'}` for "
                       f"{options.config.steps} steps on {options.data} ({loss.describe()}); {best}.")
        derived = write_entry_folder(entry, out_dir, result.best_state,
                                     name=name or f"{entry.name}_{'ft' if finetune else 'trained'}",
                                     description=description, kwargs=options.overrides, overwrite=overwrite,
                                     origin=weights_origin(what, result, options.config.steps))
    return derived, result


def model_for_training(entry: Entry, *, finetune: bool, weights: str | os.PathLike | None = None,
                       overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """The model to train: built with the entry's kwargs updated by ``overrides`` (seed torch first for a
    reproducible initialisation), with the entry's (or the given) weights loaded strictly when ``finetune``."""
    model = entry.build(**dict(overrides or {}))
    if finetune:
        if entry.spec.weights is None and weights is None:
            raise EntryError(f"{entry.name}: has no weights to fine-tune (give --weights, or use `ntirekit train`)")
        path = entry.weights_path(weights)
        assert path is not None
        load_state_dict(entry, model, path)
    return model


def default_ckpt_dir(entry: Entry, name: str | None = None, finetune: bool = False) -> Path:
    """``runs/<output entry name>.ckpt`` under the current folder (``runs/`` is ignored by git; never inside an entry
    folder, so checkpoints do not travel with a submission)."""
    return Path("runs") / f"{name or entry.name + ('_ft' if finetune else '_trained')}.ckpt"
