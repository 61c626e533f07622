"""The ``psnr`` track: restoration quality of ESR entries on an image dataset.

Protocols (:mod:`ntirekit.quality`): ``challenge`` = RGB PSNR on the uint8-rounded output with ``border = scale``
(the official NTIRE ESR harness); ``paper`` = Y-channel (BT.601 studio range, float) PSNR with ``border = scale``.
One record per entry: ``psnr_db`` and ``ssim`` are means over images; ``images`` lists ``{name, psnr_db, ssim}``.
``ssim`` is computed only when asked (``options.extra["ssim"]``, ``eval --ssim``), else it is ``None``.

The images flow through :mod:`ntirekit.eval.image_pipeline`: read and moved to the device ahead in worker threads, the
output rounded to uint8 and compared on the device (:mod:`ntirekit.quality.device`: the challenge PSNR in exact
integer arithmetic, the official float64 figure bit for bit), SR images written in the background. ``options.extra``:

- ``ssim`` (bool, default False): also SSIM, on the device;
- ``save_sr`` (folder): write each SR image to ``FOLDER/<entry>/<name>.png``, named as the official ``test_demo.py``
  saves them (the HR file's name, ``0801.png`` for LR ``0801x4.png``), the layout ``ntirekit pack --format
  esr-results`` zips (the 2022 script also cut names to 4 characters, which only DIV2K names survive; the kit keeps
  the whole HR name, as the results format requires);
- ``workers`` (int, default :func:`ntirekit.eval.image_pipeline.default_workers`): reader threads; 0 runs every step
  serially in one thread (same record, figure for figure).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from ntirekit.data.images import open_image_dataset
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record, split_of
from ntirekit.core.spec import Entry
from ntirekit.eval.columns import cell
from ntirekit.eval.graph_side import COUNT_SHAPE, counting_image
from ntirekit.eval.guard import guard
from ntirekit.eval.limits import run_limits
from ntirekit.eval.measure_graph import (check_outputs, check_shapes, export_info, fresh_images, harness_of, jailed,
                                         one_network, vet)
from ntirekit.eval.sides import graph_side, jail_checkpoint, team_side, timed_export
from ntirekit.eval.image_pipeline import ImageWriter, prefetch
from ntirekit.eval.inference import run_tiled
from ntirekit.eval.pipeline import declared_weights
from ntirekit.eval.track import Column, EvalOptions, Track, TrackOption
from ntirekit.jail.run import Limits
from ntirekit.quality.device import output_to_uint8, psnr_tensor, ssim_tensor


def evaluate(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    device = resolve_device(options.device)
    fp = fingerprint(device)
    datasets: dict[int, Any] = {}
    track_limits = run_limits(TRACKS[0], options)
    for entry in entries:
        failed: list[dict[str, Any]] = []
        rec: dict[str, Any] | None = None
        with guard(entry, "psnr", fp, failed):  # never yield inside guard
            rec = _evaluate_jailed(entry, options, fp, datasets, track_limits) if jailed(entry, options) else \
                _evaluate_entry(entry, options, device, fp, datasets)
        yield from failed if rec is None else [rec]


def open_dataset(data: str, scale: int, split: str | None = None) -> Any:
    """The image dataset ``data`` for a x``scale`` entry; a DIV2K-style root opens its ``split`` (default valid)."""
    return open_image_dataset(data, scale=scale, split=split or "valid")


def sr_file_name(name: str) -> str:
    """The file an image's SR output is saved as: its HR name with ``.png``."""
    return f"{name}.png"


def _evaluate_entry(entry: Entry, options: EvalOptions, device: torch.device, fp: dict[str, Any],
                    datasets: dict[int, Any]) -> dict[str, Any]:
    """One entry's record over the dataset of its scale (opened once per scale); raises on any failure."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the psnr track runs esr entries")
    extra = options.extra or {}
    workers = extra.get("workers")
    save_dir = Path(extra["save_sr"]) / entry.name if extra.get("save_sr") else None
    scale = entry.spec.scale
    if scale not in datasets:
        datasets[scale] = open_dataset(str(options.data), scale, options.split)
    dataset = datasets[scale]
    if not dataset.has_hr:
        raise ValueError(f"{dataset.name}: some images have no HR image; PSNR needs HR")
    model = entry.load(options.weights.get(entry.name), device=device)
    data_range = entry.spec.data_range
    tile = options.tile or entry.spec.tile or None      # the caller's --tile, else the entry's own
    images = []
    start = time.perf_counter()
    with ImageWriter(background=workers != 0) as writer:
        items = prefetch(dataset, device, data_range, workers=workers)
        for item in tqdm(items, total=len(dataset), desc=entry.name, unit="img", disable=not options.progress,
                         leave=False):
            y = run_tiled(model, item.x, scale, tile, options.tile_overlap)
            expected = (item.x.shape[-2] * scale, item.x.shape[-1] * scale)
            if tuple(y.shape[-2:]) != expected:
                raise RuntimeError(f"output is {tuple(y.shape[-2:])}, expected {expected} for a x{scale} model")
            sr = output_to_uint8(y, data_range)
            del y
            assert item.hr is not None
            images.append(_score(sr, item.hr, item.name, options, scale))
            if save_dir is not None:
                writer.submit(save_dir / sr_file_name(item.name), sr)
    return _record(entry, options, fp, dataset.name, images, tile, time.perf_counter() - start, save_dir)


def _record(entry: Entry, options: EvalOptions, fp: dict[str, Any], dataset_name: str, images: list[dict[str, Any]],
            tile: int | None, seconds: float, save_dir: Path | None) -> dict[str, Any]:
    """The psnr record of ``images`` (``{name, psnr_db, ssim}`` each), in process or scored by the parent."""
    if not images:
        raise ValueError(f"{dataset_name}: no images")
    n = len(images)
    with_ssim = bool((options.extra or {}).get("ssim", False))
    return record(entry.name, "psnr", fp, protocol=options.protocol, dataset=dataset_name,
                  split=options.split or split_of(dataset_name),
                  psnr_db=sum(i["psnr_db"] for i in images) / n,
                  ssim=sum(i["ssim"] for i in images) / n if with_ssim else None,
                  images=images, scale=entry.spec.scale, data_range=entry.spec.data_range,
                  weights=declared_weights(entry, options.weights.get(entry.name)), **({"reference": True} if entry.spec.reference else {}),
                  tile=tile, seconds=round(seconds, 3),
                  **({"sr_folder": str(save_dir)} if save_dir is not None else {}))


def _score(sr: torch.Tensor, hr: torch.Tensor, name: str, options: EvalOptions, scale: int) -> dict[str, Any]:
    with_ssim = bool((options.extra or {}).get("ssim", False))
    return {"name": name, "psnr_db": psnr_tensor(sr, hr, protocol=options.protocol, border=scale),
            "ssim": ssim_tensor(sr, hr, protocol=options.protocol, border=scale) if with_ssim else None}


# ------------------------------------------------------------------------------ untrusted: jailed, parent-scored

def _evaluate_jailed(entry: Entry, options: EvalOptions, fp: dict[str, Any], datasets: dict[int, Any],
                     track_limits: Callable[[], Limits]) -> dict[str, Any]:
    """An untrusted entry: its code, in the jail, gets the LR images (never an HR image) and returns its uint8
    outputs, which this process scores; it also exports its graph, which a jail without team code runs on the same
    images: the outputs must be the same (else "exported graph differs from the scored model"), and the record
    carries the graph's identity (``graph_id``, on the counting input) so that a leaderboard can require the timed
    graph to be the scored network. A network that does not export is scored without one (``graph``: why)."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the psnr track runs esr entries")
    scale = entry.spec.scale
    if scale not in datasets:
        datasets[scale] = open_dataset(str(options.data), scale, options.split)
    dataset = datasets[scale]
    if not dataset.has_hr:
        raise ValueError(f"{dataset.name}: some images have no HR image; PSNR needs HR")
    weights, rel = jail_checkpoint(entry, options.weights.get(entry.name))
    tile = options.tile or entry.spec.tile or None
    harness = harness_of(entry, options, rel, tile)
    lrs = [dataset[i].lr for i in range(len(dataset))]
    count = counting_image()
    shapes = harness.model_shapes([lr.shape[:2] for lr in [*lrs, count]])
    limits = track_limits()
    save_dir = Path(options.extra["save_sr"]) / entry.name if (options.extra or {}).get("save_sr") else None
    images: list[dict[str, Any]] = []
    start = time.perf_counter()
    with team_side(entry, harness, jailed=True, limits=limits, weights=weights) as (team, info):
        data, reason, export_seconds = timed_export(team, shapes)
        how: dict[str, Any] = {"exportable": False, "reason": reason}
        graph = vet(data) if data is not None else None
        fresh = fresh_images(check_shapes(graph, harness, [*lrs, count])) if graph is not None else []
        graph_context = graph_side(data, harness, jailed=True, limits=limits) if data is not None else \
            contextlib.nullcontext(None)
        with graph_context as side, ImageWriter(background=False) as writer:
            for index, lr in enumerate(tqdm(lrs, desc=entry.name, unit="img", disable=not options.progress,
                                            leave=False)):
                pair = dataset[index]
                sr = team.run_image(lr)
                if side is not None:
                    check_outputs(side, [lr], [sr], [f"image {pair.name}"])
                assert pair.hr is not None
                sr_t = torch.from_numpy(np.ascontiguousarray(sr.transpose(2, 0, 1)))
                hr_t = torch.from_numpy(np.ascontiguousarray(pair.hr.transpose(2, 0, 1)))
                images.append(_score(sr_t, hr_t, pair.name, options, scale))
                if save_dir is not None:
                    writer.submit(save_dir / sr_file_name(pair.name), sr)
            if side is not None:
                extra_inputs = [count, *fresh]
                check_outputs(side, extra_inputs, [team.run_image(img) for img in extra_inputs],
                              ["the counting input", *(f"random input {k + 1}" for k in range(len(fresh)))])
                figures = one_network(side.figures(COUNT_SHAPE, fvcore=False))
                how = {"id": figures["graph_id"], **export_info(graph, data, export_seconds,
                                                                len(lrs) + len(extra_inputs))}
    rec = _record(entry, options, fp, dataset.name, images, tile, time.perf_counter() - start, save_dir)
    rec.update(graph=how, **({"graph_id": how["id"]} if "id" in how else {}), **info.fields())
    return rec


TRACKS = (Track("psnr", evaluate, "esr", times=False, needs_weights=True,
                record_fields=("protocol", "dataset", "split", "psnr_db", "ssim", "images", "scale", "data_range", "weights",
                               "tile"),
                optional_fields=("graph", "graph_id", "sandbox", "limits", "output", "sr_folder", "reference",
                                 "seconds"),
                columns=(Column("PSNR [dB]", cell("psnr_db", fmt="{:.3f}")),
                         Column("SSIM", cell("ssim", fmt="{:.4f}"))),
                options=(TrackOption("ssim", bool, False, "also SSIM (on the device; off by default, as in the "
                                     "official harness)", "--ssim"),
                         TrackOption("save_sr", str, None, "write the SR images to DIR/<entry>/<HR name>.png (for "
                                     "`ntirekit pack --format esr-results`)", "--save-sr"),
                         TrackOption("workers", int, None, "reader threads (0: every step serially in one thread)")),
                description="PSNR (SSIM with --ssim) of ESR entries on an image dataset",
                check_data=open_dataset),)
