"""The ``psnr`` track: restoration quality of ESR entries on an image dataset.

Protocols (:mod:`ntirekit.quality`): ``challenge`` = RGB PSNR on the uint8-rounded output with ``border = scale``
(the official NTIRE ESR harness); ``paper`` = Y-channel (BT.601 studio range, float) PSNR with ``border = scale``.
One record per entry: ``psnr_db`` and ``ssim`` are means over images; ``images`` lists ``{name, psnr_db, ssim}``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import torch
from tqdm import tqdm

from ntirekit.data.images import open_image_dataset
from ntirekit.core.spec import Entry
from ntirekit.eval.inference import upscale_image
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.quality import psnr, ssim
from ntirekit.core.records import record
from ntirekit.eval.columns import cell
from ntirekit.eval.guard import guard
from ntirekit.eval.track import Column, EvalOptions, Track


def evaluate(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    device = resolve_device(options.device)
    fp = fingerprint(device)
    datasets: dict[int, Any] = {}
    for entry in entries:
        failed: list[dict[str, Any]] = []
        rec: dict[str, Any] | None = None
        with guard(entry, "psnr", fp, failed):  # never yield inside guard
            rec = _evaluate_entry(entry, options, device, fp, datasets)
        yield from failed if rec is None else [rec]


def _evaluate_entry(entry: Entry, options: EvalOptions, device: torch.device, fp: dict[str, Any],
                    datasets: dict[int, Any]) -> dict[str, Any]:
    """One entry's record over the dataset of its scale (opened once per scale); raises on any failure."""
    if entry.spec.track != "esr":
        raise ValueError(f"{entry.name} is a {entry.spec.track} entry; the psnr track runs esr entries")
    scale = entry.spec.scale
    if scale not in datasets:
        datasets[scale] = open_image_dataset(options.data, scale=scale)
    dataset = datasets[scale]
    model = entry.load(options.weights.get(entry.name), device=device)
    images = []
    start = time.perf_counter()
    for pair in tqdm(dataset, desc=entry.name, unit="img", disable=not options.progress, leave=False):
        if pair.hr is None:
            raise ValueError(f"{dataset.name}: {pair.name} has no HR image; PSNR needs HR")
        sr = upscale_image(model, pair.lr, scale=scale, data_range=entry.spec.data_range, device=device,
                           tile=options.tile, overlap=options.tile_overlap)
        images.append({"name": pair.name,
                       "psnr_db": psnr(sr, pair.hr, protocol=options.protocol, border=scale),
                       "ssim": ssim(sr, pair.hr, protocol=options.protocol, border=scale)})
    if not images:
        raise ValueError(f"{dataset.name}: no images")
    n = len(images)
    return record(entry.name, "psnr", fp, protocol=options.protocol, dataset=dataset.name,
                  psnr_db=sum(i["psnr_db"] for i in images) / n, ssim=sum(i["ssim"] for i in images) / n,
                  images=images, scale=scale, data_range=entry.spec.data_range,
                  weights="pretrained" if entry.spec.weights or entry.name in options.weights else "random",
                  tile=options.tile, seconds=round(time.perf_counter() - start, 3))


TRACKS = (Track("psnr", evaluate, "esr", times=False,
                record_fields=("protocol", "dataset", "psnr_db", "ssim", "images", "scale", "data_range", "weights",
                               "tile"),
                columns=(Column("PSNR [dB]", cell("psnr_db", fmt="{:.3f}")),
                         Column("SSIM", cell("ssim", fmt="{:.4f}"))),
                description="PSNR/SSIM of ESR entries on an image dataset"),)
