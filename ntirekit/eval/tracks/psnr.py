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

import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm

from ntirekit.data.images import open_image_dataset, read_image, write_image
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record, split_of
from ntirekit.core.spec import Entry
from ntirekit.eval.columns import cell
from ntirekit.eval.guard import guard
from ntirekit.eval.image_pipeline import ImageWriter, model_input, prefetch
from ntirekit.eval.inference import run_tiled
from ntirekit.eval.pipeline import declared_weights
from ntirekit.eval.track import ChildPlan, Column, EvalOptions, Track, TrackOption
from ntirekit.quality.device import output_to_uint8, psnr_tensor, ssim_tensor


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


# ----------------------------------------------------------------------------------- sandboxed: parent-scored

def _sandbox_inputs(entry: Entry, options: EvalOptions, scratch: Path, inside: Path) -> tuple[str, dict[str, Any]]:
    """Parent side: the dataset's LR images (never its HR) as ``scratch/lr/NNNNN.png`` for the child."""
    dataset = open_dataset(str(options.data), entry.spec.scale, options.split)
    if not dataset.has_hr:
        raise ValueError(f"{dataset.name}: some images have no HR image; PSNR needs HR")
    (scratch / "lr").mkdir()
    (scratch / "sr").mkdir()
    for index in range(len(dataset)):
        write_image(scratch / "lr" / f"{index:05d}.png", dataset[index].lr)
    return f"{__name__}:super_resolve", {"count": len(dataset), "lr": str(inside / "lr"), "sr": str(inside / "sr"),
                                         "tile": options.tile, "tile_overlap": options.tile_overlap,
                                         "weights": options.weights.get(entry.name), "device": options.device}


def super_resolve(entry: Entry, *, count: int, lr: str, sr: str, tile: int | None, tile_overlap: int,
                  weights: str | None, device: str) -> dict[str, Any]:
    """Child side (in the sandbox): ``lr/NNNNN.png`` through the model, the uint8 output as ``sr/NNNNN.png``. It
    sees no HR image and computes no figure."""
    torch_device = resolve_device(device)
    model = entry.load(weights, device=torch_device)
    scale, data_range = entry.spec.scale, entry.spec.data_range
    for index in range(count):
        x = model_input(read_image(Path(lr) / f"{index:05d}.png"), data_range).to(torch_device)
        y = run_tiled(model, x, scale, tile or entry.spec.tile or None, tile_overlap)
        write_image(Path(sr) / f"{index:05d}.png", output_to_uint8(y, data_range).permute(1, 2, 0).cpu().numpy())
    return {"images": count}


def _sandbox_collect(entry: Entry, options: EvalOptions, scratch: Path, child: dict[str, Any]) -> dict[str, Any]:
    """Parent side: the record, each SR image read back and scored against the HR image the child never saw."""
    start = time.perf_counter()
    dataset = open_dataset(str(options.data), entry.spec.scale, options.split)
    scale = entry.spec.scale
    save_dir = Path(options.extra["save_sr"]) / entry.name if (options.extra or {}).get("save_sr") else None
    images = []
    with ImageWriter(background=False) as writer:
        for index in range(len(dataset)):
            pair = dataset[index]
            assert pair.hr is not None
            path = scratch / "sr" / f"{index:05d}.png"
            if not path.is_file():
                raise RuntimeError(f"the entry left no output for image {pair.name}")
            sr = read_image(path)
            if sr.shape != pair.hr.shape:
                raise RuntimeError(f"output is {sr.shape[:2]}, expected {pair.hr.shape[:2]} for a x{scale} model")
            sr_t = torch.from_numpy(np.ascontiguousarray(sr.transpose(2, 0, 1)))
            hr_t = torch.from_numpy(np.ascontiguousarray(pair.hr.transpose(2, 0, 1)))
            images.append(_score(sr_t, hr_t, pair.name, options, scale))
            if save_dir is not None:
                writer.submit(save_dir / sr_file_name(pair.name), sr)
    fp = fingerprint(resolve_device(options.device))
    return _record(entry, options, fp, dataset.name, images, options.tile or entry.spec.tile or None,
                   time.perf_counter() - start, save_dir)

TRACKS = (Track("psnr", evaluate, "esr", times=False, needs_weights=True,
                record_fields=("protocol", "dataset", "split", "psnr_db", "ssim", "images", "scale", "data_range", "weights",
                               "tile"),
                columns=(Column("PSNR [dB]", cell("psnr_db", fmt="{:.3f}")),
                         Column("SSIM", cell("ssim", fmt="{:.4f}"))),
                options=(TrackOption("ssim", bool, False, "also SSIM (on the device; off by default, as in the "
                                     "official harness)", "--ssim"),
                         TrackOption("save_sr", str, None, "write the SR images to DIR/<entry>/<HR name>.png (for "
                                     "`ntirekit pack --format esr-results`)", "--save-sr"),
                         TrackOption("workers", int, None, "reader threads (0: every step serially in one thread)")),
                description="PSNR (SSIM with --ssim) of ESR entries on an image dataset",
                check_data=open_dataset, child_plan=ChildPlan(_sandbox_inputs, _sandbox_collect)),)
