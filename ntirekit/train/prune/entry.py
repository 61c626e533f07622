"""Pruning a whole entry: choose widths (given, or from a MACs target), prune, and write the pruned entry folder.

A pruned entry is configuration plus a strict state dict:

- when the model family has a width spec (:mod:`ntirekit.train.prune.prune`) and every pruned name maps to a constructor
  argument, the pruned entry is the source's model code with those arguments changed (RLFN: ``feature_channels``,
  ``mid_channels``): exactly what a team would submit;
- otherwise the folder gets a generated ``pruned_model.py`` whose factory builds the source model and shrinks it to
  ``widths`` (group name -> width, in ``entry.toml``) with :func:`ntirekit.train.prune.apply_widths`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ntirekit.core.spec import Entry
from ntirekit.measure.counts import macs_ntire2022
from ntirekit.train.data import SRPatchSource, load_hr_images
from ntirekit.train.derive import factory_accepts, write_entry_folder
from ntirekit.train.prune.groups import ChannelGraph, trace_channels
from ntirekit.train.prune.prune import (PruneError, PruneResult, WidthSpec, named_groups, prune_model, resolve_widths,
                                        width_spec_of)
from ntirekit.data.bicubic import imresize
from ntirekit.data.sample import SAMPLE_NAMES, sample_photo
from ntirekit.quality.convert import to_model_input, to_uint8_output
from ntirekit.quality.metrics import psnr

__all__ = ["prune_entry", "widths_for_macs_ratio", "parse_widths", "pruned_macs", "calibration_inputs",
           "PsnrCheck", "psnr_check", "COLLAPSE_DB", "DEFAULT_CRITERION"]

#: The criterion ``prune`` uses unless told: ``act`` (data-aware), because the L1 norm of the filters alone collapses
#: families whose channels differ in scale across layers (RLFN pruned to 46/48: about 5.8 dB with ``l1``).
DEFAULT_CRITERION = "act"
#: A PSNR drop (dB, on the calibration crops) above which a pruned model is said to have collapsed.
COLLAPSE_DB = 3.0
#: The calibration crops of :func:`psnr_check`: the centre ``CHECK_HR`` x ``CHECK_HR`` pixels of each sample photo.
CHECK_HR = 96

_GENERIC_MODEL = '''"""Pruned {source}: ``{factory}`` shrunk to the channel widths given in entry.toml (written by `ntirekit prune`).

``widths`` maps each coupled channel group (named after its first producing conv) to its width; the groups are found
by tracing the model (:func:`ntirekit.train.prune.groups.trace_channels`), and the weights are loaded afterwards.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ntirekit.train.prune import apply_widths


def _source_factory():
    path = Path(__file__).with_name({file!r})
    spec = importlib.util.spec_from_file_location(__name__ + "_source", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, {attr!r})


def build_pruned(widths, **kwargs):
    return apply_widths(_source_factory()(**kwargs), widths)
'''


def parse_widths(text: str) -> dict[str, int]:
    """``"trunk=46,mid=48"`` -> ``{"trunk": 46, "mid": 48}``."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise PruneError(f"bad width {part!r}: expected NAME=INT")
        out[key.strip()] = int(value)
    return out


def pruned_macs(model: nn.Module, graph: ChannelGraph, widths: Mapping[str, int],
                input_shape: Sequence[int] = (1, 3, 256, 256)) -> int:
    """MACs (2022 counter) of ``model`` pruned to ``widths``, computed on the meta device (no arithmetic)."""
    meta = copy.deepcopy(model).to("meta")
    keep = {g: list(range(w)) for g, w in resolve_widths(graph, width_spec_of(model), widths).items()}
    pruned = prune_model(meta, widths, graph=graph, inplace=True, keep=keep).model if widths else meta
    return macs_ntire2022(pruned, input_shape)


def widths_for_macs_ratio(model: nn.Module, ratio: float, graph: ChannelGraph | None = None,
                          names: Sequence[str] | None = None, multiple: int = 1) -> dict[str, int]:
    """The largest uniform fraction of every named width (default: the family's default names, else every group)
    whose pruned MACs are at most ``ratio`` times the model's; widths are rounded to ``multiple`` (at least 1)."""
    if not 0 < ratio <= 1:
        raise PruneError(f"--target-macs-ratio must be in (0, 1], got {ratio}")
    graph = graph or trace_channels(model)
    spec = width_spec_of(model)
    groups = named_groups(graph, spec)
    if names is None:
        names = [n for n in (spec.default_names if spec else ()) if n in groups] or list(groups)
    full = {n: max(g.width for g in groups[n]) for n in names}
    base = pruned_macs(model, graph, {})

    def widths_at(f: float) -> dict[str, int]:
        return {n: max(1, min(w, round(f * w / multiple) * multiple)) for n, w in full.items()}

    lo, hi = 0.0, 1.0
    if pruned_macs(model, graph, widths_at(1.0)) <= ratio * base:
        return widths_at(1.0)
    for _ in range(20):
        mid = (lo + hi) / 2
        if pruned_macs(model, graph, widths_at(mid)) <= ratio * base:
            lo = mid
        else:
            hi = mid
    return widths_at(lo)


def _family_kwargs(model: nn.Module, graph: ChannelGraph, spec: WidthSpec | None,
                   per_group: Mapping[str, int]) -> dict[str, int] | None:
    """Constructor arguments that build the pruned architecture, or None when the family spec cannot express it."""
    if spec is None:
        return None
    kwargs: dict[str, int] = {}
    claimed: set[str] = set()
    for name, groups in named_groups(graph, spec).items():
        if name not in spec.widths:
            continue
        widths = {per_group.get(g.name, g.width) for g in groups}
        claimed.update(g.name for g in groups)
        if len(widths) != 1:
            return None
        (width,) = widths
        if width != max(g.width for g in groups):
            kwargs[spec.kwarg(name)] = width
    if any(g not in claimed for g in per_group):
        return None
    return kwargs


def calibration_inputs(entry: Entry, spec: str = "skimage", batches: int = 2, batch_size: int = 8,
                       lr_patch: int = 48, seed: int = 0) -> list[torch.Tensor]:
    """LR patches (in the entry's data range) from HR images (``"skimage"`` or a folder) for the ``act`` criterion."""
    source = SRPatchSource(load_hr_images(spec), entry.spec.scale, lr_patch=lr_patch, batch_size=batch_size,
                           data_range=entry.spec.data_range)
    rng = np.random.default_rng(seed)
    return [source.sample(rng)[0] for _ in range(batches)]


@dataclass(frozen=True)
class PsnrCheck:
    """PSNR (challenge protocol, dB, mean over the crops) of a model before and after pruning."""

    before_db: float
    after_db: float
    images: int
    size: int                                   # HR crop side in pixels

    @property
    def drop_db(self) -> float:
        return self.before_db - self.after_db

    @property
    def collapsed(self) -> bool:
        return self.drop_db > COLLAPSE_DB


def _check_pairs(scale: int, size: int = CHECK_HR) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(LR, HR)`` uint8 pairs: the centre ``size`` crop of each sample photo, LR by the MATLAB-exact bicubic."""
    side = size - size % scale
    pairs = []
    for name in SAMPLE_NAMES:
        img = sample_photo(name)
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        hr = np.ascontiguousarray(img[top:top + side, left:left + side])
        pairs.append((imresize(hr, 1.0 / scale), hr))
    return pairs


def psnr_check(entry: Entry, before: nn.Module, after: nn.Module, size: int = CHECK_HR) -> PsnrCheck:
    """PSNR of ``before`` and ``after`` on the calibration crops (the five embedded sample photos, centre ``size``
    pixels: a second or two on a CPU), challenge protocol (RGB, border = scale)."""
    scale, data_range = entry.spec.scale, entry.spec.data_range
    pairs = _check_pairs(scale, size)
    means = []
    for model in (before, after):
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            values = [psnr(to_uint8_output(model(to_model_input(lr, data_range)), data_range), hr,
                           protocol="challenge", border=scale) for lr, hr in pairs]
        model.train(was_training)
        means.append(float(np.mean(values)))
    return PsnrCheck(means[0], means[1], len(pairs), pairs[0][1].shape[0])


def prune_entry(entry: Entry, out_dir: str | os.PathLike, *, widths: Mapping[str, int] | None = None,
                target_macs_ratio: float | None = None, criterion: str = DEFAULT_CRITERION,
                weights: str | os.PathLike | None = None, name: str | None = None,
                calibration: str = "skimage", overwrite: bool = False) -> tuple[Entry, PruneResult]:
    """Prune ``entry`` and write the pruned entry folder; returns the new entry and the pruning result.

    ``calibration`` (HR images: ``"skimage"`` or a folder) feeds the ``act`` criterion; other criteria ignore it.
    When the source has weights, ``result.psnr`` holds the PSNR before and after on the calibration crops
    (:func:`psnr_check`); with random weights it is None (nothing to compare).
    """
    if (widths is None) == (target_macs_ratio is None):
        raise PruneError("give exactly one of widths or a target MACs ratio")
    pretrained = entry.spec.weights is not None or weights is not None
    model = entry.load(weights, pretrained=pretrained)
    graph = trace_channels(model)
    if widths is None:
        widths = widths_for_macs_ratio(model, float(target_macs_ratio), graph)
    calib = calibration_inputs(entry, calibration) if criterion == "act" else None
    result = prune_model(model, widths, criterion=criterion, graph=graph, calibration=calib)
    if pretrained:
        result.psnr = psnr_check(entry, model, result.model)
    spec = width_spec_of(model)
    per_group = result.widths
    name = name or f"{entry.name}_pruned"
    shown = ", ".join(f"{k}={v}" for k, v in widths.items())
    how = f"{criterion} importance" + (f" calibrated on {calibration}" if criterion == "act" else "")
    description = f"{entry.name} pruned by `ntirekit prune` ({how}, coupled channel groups) to {shown}; not fine-tuned."
    family = _family_kwargs(model, graph, spec, per_group)
    if family is not None and all(factory_accepts(entry, k) for k in family):
        derived = write_entry_folder(entry, out_dir, result.model.state_dict(), name=name,
                                     description=description, kwargs=family, overwrite=overwrite)
    else:
        file, attr = entry.spec.factory.split(":", 1)
        code = _GENERIC_MODEL.format(source=entry.name, factory=entry.spec.factory, file=file, attr=attr)
        derived = write_entry_folder(entry, out_dir, result.model.state_dict(), name=name, description=description,
                                     factory="pruned_model.py:build_pruned", kwargs={"widths": dict(per_group)},
                                     extra_files={"pruned_model.py": code}, overwrite=overwrite)
    return derived, result
