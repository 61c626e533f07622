"""The image pipeline of the ``psnr`` track: inputs read and moved to the device ahead, outputs written behind.

:func:`prefetch` yields one :class:`Prepared` image after another, in dataset order. With ``workers > 0`` the next
``ahead`` images are read in worker threads while the model runs on the current one (PNG decoding in OpenCV and
numpy's copies release the GIL): each worker decodes the LR and HR files, makes the model input exactly as the
official harness does (:func:`model_input`: the values and strides of :func:`ntirekit.quality.convert.to_model_input`,
without torch kernels that would contend with the model's threads), lays the HR out as ``CxHxW`` uint8 and moves
both to the device (CUDA: pinned memory, ``non_blocking`` copies on the worker's own stream, so that they overlap
the model's kernels). With ``workers = 0`` the same steps run inline
in the caller's thread: the serial reference, which gives the same tensors.

:class:`ImageWriter` encodes and writes uint8 RGB images in one background thread (bounded: at most ``pending``
images wait), so PNG encoding overlaps the next forward. Errors surface at :meth:`ImageWriter.close` (or at the
next :meth:`ImageWriter.submit`), naming the file.

Only the quality track uses this pipeline: the timing tracks (runtime, overall) run nothing in the background while a
forward is timed.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ntirekit.data.images import ImageDataset, write_image
from ntirekit.quality.convert import to_model_input

__all__ = ["Prepared", "default_workers", "model_input", "prefetch", "ImageWriter"]


def default_workers() -> int:
    """Reader threads by default: 2 (one image decoding while another waits), 1 on a single-core machine."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: ``x`` is the ``1xCxhxw`` float input and ``hr`` the ``CxHxW`` uint8 HR image
    (None for an LR-only dataset), both on the device."""

    name: str
    x: torch.Tensor
    hr: torch.Tensor | None


@functools.lru_cache(maxsize=None)
def _input_values(data_range: float) -> np.ndarray:
    """The model input value of each uint8 level, made by :func:`to_model_input` itself (so the same bits)."""
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    values = to_model_input(levels, data_range)[0, 0].reshape(-1).numpy().copy()
    values.setflags(write=False)
    return values


def model_input(lr: np.ndarray, data_range: float) -> torch.Tensor:
    """:func:`ntirekit.quality.convert.to_model_input` on the CPU without torch kernels: the same values (a lookup
    of the 256 levels) and the same strides (``1x3xHxW`` over channels-last memory, as the harness's
    ``permute(2, 0, 1).float()`` leaves them), so worker threads do not contend with the model's torch threads."""
    img = np.asarray(lr)
    if img.dtype != np.uint8 or img.ndim != 3:
        return to_model_input(img, data_range)           # the reference path and its errors
    return torch.from_numpy(_input_values(float(data_range))[img]).permute(2, 0, 1).unsqueeze(0)


def _prepare(dataset: ImageDataset, index: int, data_range: float, device: torch.device) -> Prepared:
    pair = dataset[index]
    cuda = device.type == "cuda"
    x = model_input(pair.lr, data_range)
    hr = None
    if pair.hr is not None:
        hr = torch.from_numpy(np.ascontiguousarray(pair.hr.transpose(2, 0, 1)))
    if cuda:
        x, hr = _to_cuda(device, x, hr)
    return Prepared(pair.name, x, hr)


_LOCAL = threading.local()


def _to_cuda(device: torch.device, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Host -> device copies on this thread's own CUDA stream (so they overlap the model's kernels on the default
    stream), finished before returning, and marked as used by the default stream for the caching allocator."""
    streams = _LOCAL.__dict__.setdefault("streams", {})
    side = streams.setdefault(device, torch.cuda.Stream(device))
    with torch.cuda.stream(side):
        out = [None if t is None else t.pin_memory().to(device, non_blocking=True) for t in tensors]
    side.synchronize()
    main = torch.cuda.default_stream(device)
    for t in out:
        if t is not None:
            t.record_stream(main)
    return out


def prefetch(dataset: ImageDataset, device: torch.device, data_range: float, *, workers: int | None = None,
             ahead: int = 3) -> Iterator[Prepared]:
    """The dataset's images as :class:`Prepared` items in order; ``workers`` reader threads keep ``ahead`` images in
    flight (``workers = 0``: serial). A failing read raises when its image's turn comes; closing the iterator early
    cancels what is queued and waits for what is running, so no thread outlives it."""
    workers = default_workers() if workers is None else int(workers)
    if workers <= 0:
        for i in range(len(dataset)):
            yield _prepare(dataset, i, data_range, device)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ntirekit-read")
    queued: deque[Future[Prepared]] = deque()
    nxt = 0
    try:
        while nxt < len(dataset) or queued:
            while nxt < len(dataset) and len(queued) < max(1, ahead):
                queued.append(pool.submit(_prepare, dataset, nxt, data_range, device))
                nxt += 1
            yield queued.popleft().result()
    finally:
        for f in queued:
            f.cancel()
        pool.shutdown(wait=True)


class ImageWriter:
    """Writes RGB uint8 images (``CxHxW`` tensors or ``HxWx3`` arrays) to files, in a background thread when
    ``background`` (else at once). Use as a context manager, or call :meth:`close`."""

    def __init__(self, background: bool = True, pending: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ntirekit-write") if background else None
        self._pending: deque[Future[Path]] = deque()
        self._limit = max(1, pending)
        self.written: list[Path] = []

    @staticmethod
    def _write(path: Path, image: torch.Tensor | np.ndarray) -> Path:
        if isinstance(image, torch.Tensor):
            image = np.ascontiguousarray(image.cpu().numpy().transpose(1, 2, 0))
        return write_image(path, image)

    def submit(self, path: str | Path, image: torch.Tensor | np.ndarray) -> None:
        """Queue one image (a CUDA tensor is copied to the host first, in the caller's thread)."""
        if isinstance(image, torch.Tensor) and image.device.type != "cpu":
            image = image.cpu()
        if self._pool is None:
            self.written.append(self._write(Path(path), image))
            return
        while len(self._pending) >= self._limit:
            self.written.append(self._pending.popleft().result())
        self._pending.append(self._pool.submit(self._write, Path(path), image))

    def close(self) -> list[Path]:
        """Wait for every queued image; raise the first write error. Returns the paths written."""
        try:
            while self._pending:
                self.written.append(self._pending.popleft().result())
        finally:
            for f in self._pending:
                f.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        return self.written

    def __enter__(self) -> "ImageWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
