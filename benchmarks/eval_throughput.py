#!/usr/bin/env python
"""Throughput of ``ntirekit eval --track psnr`` against the official NTIRE ESR loop, side by side in one process.

The official loop is re-implemented here from the public harness (``ofsoundof/NTIRE2022_ESR``: ``test_demo.py``'s
``run`` and ``utils/utils_image.py``), step for step: ``cv2.imread(IMREAD_UNCHANGED)`` + ``cvtColor`` of the LR,
``uint2tensor4``, ``.to(device)``, the timed forward (CUDA events, ``perf_counter`` on CPU), ``tensor2uint``, the HR
read, ``squeeze``, ``modcrop`` (a copy), ``calculate_psnr`` (float64 ``astype`` copies, ``np.mean``) and ``imsave`` of
every SR image (``img_name[:4] + ext``), one image after the other. The kit runs its psnr track
(:func:`ntirekit.eval.tracks.psnr.evaluate`) on the same files with the same model object's weights, pipelined (default)
and serial (``workers = 0``), without and with ``--save-sr``. Both must give the same per-image PSNR (to 1e-9 dB; the
kit's integer PSNR is bit-identical by construction).

The images: ``--images`` DIV2K-sized pairs (HR 2040x1356, landscape and portrait) in the NTIRE layout
(``DIV2K_valid_HR/0801.png``, ``DIV2K_valid_LR/0801x4.png``), made from the kit's embedded photos (cubic
upscaling, plus Gaussian noise of sigma 2 so that the PNGs are as large as real DIV2K ones; LR by area averaging).
Models: ``free`` (nearest-neighbour x4, nearly free: what is compared is the harness around the model) and
``rlfn_ntire`` (random weights, saved and given to both: PSNR and speed do not depend on their values).

Each round runs every configuration once, in a rotating order; the figure is the median wall time over the rounds,
and the ratio is official / kit (the kit's throughput in multiples of the official loop's).

Measured on CPU (torch 2.13.0+cpu, 2 idle AMD EPYC cores, 10 images, PSNR identical to 0 dB, after the cvtColor
and channels-last SSE changes): free model, official 0.86 s (no save) / 1.39 s (saves), kit 0.42 s / 0.77 s
(--save-sr): 2.05x / 1.81x, and 3.32x against the official loop as it runs (it always saves); rlfn_ntire (one round):
5.44 / 6.39 s against 4.98 / 5.34 s: 1.09x / 1.20x. Earlier, on 2 shared cores (before those changes): free model,
load ~18: official 32.6 s (no save) / 37.1 s (saves), kit 6.75 s / 11.0 s (--save-sr): 4.8x / 3.4x; free model,
load ~5: 5.71 / 9.83 s against 2.76 / 5.83 s: 2.07x / 1.69x; rlfn_ntire (one round, load ~18): 233.7 / 212.8 s
against 155.1 / 137.7 s: 1.51x / 1.55x. Pipelined against serial only gains where a core is free (1.47x at load ~18
when the official loop's memory traffic dominated, 0.94x at load ~5): image decoding is half of the kit's time.

    .venv/bin/python benchmarks/eval_throughput.py                           # CPU, 10 images, 3 rounds
    .venv/bin/python benchmarks/eval_throughput.py --device cuda --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
HR_SIZE = (1356, 2040)          # DIV2K valid HR, landscape (HxW)
FREE_MODEL = '''
import torch.nn.functional as F
from torch import nn


class NearestX4(nn.Module):
    """x4 nearest-neighbour upscaling: a model that costs (almost) nothing."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")
'''


# ------------------------------------------------------------------------------------------------- the data

def make_div2k_like(root: Path, count: int, seed: int = 0,
                    hr_size: tuple[int, int] = HR_SIZE) -> list[tuple[str, str]]:
    """``count`` HR/LR pairs in the NTIRE ESR layout under ``root``; returns the (LR, HR) paths in order."""
    from ntirekit.data.sample import SAMPLE_NAMES, sample_photo

    rng = np.random.default_rng(seed)
    (root / "DIV2K_valid_HR").mkdir(parents=True, exist_ok=True)
    (root / "DIV2K_valid_LR").mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        photo = sample_photo(SAMPLE_NAMES[i % len(SAMPLE_NAMES)])
        h, w = hr_size if i % 2 == 0 else hr_size[::-1]
        hr = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        hr = np.clip(np.rint(hr + rng.normal(0.0, 2.0, hr.shape)), 0, 255).astype(np.uint8)
        lr = cv2.resize(hr, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        name = f"{801 + i:04d}"
        lr_path, hr_path = root / "DIV2K_valid_LR" / f"{name}x4.png", root / "DIV2K_valid_HR" / f"{name}.png"
        cv2.imwrite(str(hr_path), hr[:, :, ::-1])
        cv2.imwrite(str(lr_path), lr[:, :, ::-1])
        pairs.append((str(lr_path), str(hr_path)))
    return pairs


# ------------------------------------------------------------------------------- the official loop, re-implemented

def _imread_uint(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)


def _uint2tensor4(img: np.ndarray, data_range: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255. / data_range).unsqueeze(0)


def _tensor2uint(img: torch.Tensor, data_range: float) -> np.ndarray:
    a = img.data.squeeze().float().clamp_(0, 1 * data_range).cpu().numpy()
    if a.ndim == 3:
        a = np.transpose(a, (1, 2, 0))
    return np.uint8((a * 255.0 / data_range).round())


def _modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    img = np.copy(img)
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...]


def _calculate_psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    h, w = a.shape[:2]
    a = a[border:h - border, border:w - border].astype(np.float64)
    b = b[border:h - border, border:w - border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def official_loop(model: nn.Module, pairs: list[tuple[str, str]], data_range: float, device: torch.device,
                  save_path: str | None, scale: int = 4) -> list[float]:
    """``test_demo.py``'s ``run`` for one model (whole images, no tile): the per-image PSNRs."""
    cuda = device.type == "cuda"
    psnrs, runtimes = [], []
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for lr_path, hr_path in pairs:
        img_name, ext = os.path.splitext(os.path.basename(hr_path))
        img_lr = _uint2tensor4(_imread_uint(lr_path), data_range).to(device)
        if cuda:
            start.record()
        t0 = time.perf_counter()
        img_sr = model(img_lr)
        if cuda:
            end.record()
            torch.cuda.synchronize()
            runtimes.append(start.elapsed_time(end))
        else:
            runtimes.append((time.perf_counter() - t0) * 1e3)
        img_sr = _tensor2uint(img_sr, data_range)
        img_hr = _modcrop(_imread_uint(hr_path).squeeze(), scale)
        psnrs.append(_calculate_psnr(img_sr, img_hr, border=scale))
        if save_path is not None:
            cv2.imwrite(os.path.join(save_path, img_name[:4] + ext), img_sr[:, :, [2, 1, 0]])
    return psnrs


# ------------------------------------------------------------------------------------------------------ main

def _entries(root: Path, weights_dir: Path) -> dict[str, tuple[Any, str | None]]:
    """The two entries and the checkpoint each is given: ``{name: (Entry, weights path or None)}``."""
    from ntirekit.core.registry import discover

    folder = root / "free_x4"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(FREE_MODEL)
    (folder / "entry.toml").write_text('name = "free_x4"\ntrack = "esr"\ntask = "sr"\nscale = 4\ndata_range = 1.0\n\n'
                                       '[model]\nfactory = "model.py:NearestX4"\n')
    registry = discover([root])
    out = {}
    for name in ("free_x4", "rlfn_ntire"):
        entry = registry[name]
        torch.manual_seed(0)
        state = entry.load(pretrained=False).state_dict()
        if not state:                  # the free model has no weights
            out[name] = (entry, None)
            continue
        path = weights_dir / f"{name}.pth"
        torch.save(state, path)
        out[name] = (entry, str(path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--hr-size", default="1356x2040", help="HxW of the HR images (multiples of 4).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["free_x4", "rlfn_ntire"])
    parser.add_argument("--rlfn-rounds", type=int, default=None, help="Rounds for rlfn_ntire (default: --rounds).")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from ntirekit.core.device import resolve_device
    from ntirekit.eval.track import EvalOptions
    from ntirekit.eval.tracks.psnr import evaluate

    device = resolve_device(args.device)
    summary: dict[str, Any] = {"device": str(device), "images": args.images, "threads": torch.get_num_threads(),
                               "models": {}}
    with tempfile.TemporaryDirectory(prefix="eval_throughput_") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        hr_h, hr_w = (int(v) for v in args.hr_size.lower().split("x"))
        pairs = make_div2k_like(tmp_path / "data", args.images, hr_size=(hr_h, hr_w))
        print(f"{args.images} pairs of {hr_h}x{hr_w} HR written in {time.perf_counter() - t0:.1f} s; device {device}, "
              f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs", flush=True)
        entries = _entries(tmp_path / "entries", tmp_path)
        for name in args.models:
            entry, weights = entries[name]
            data_range = entry.spec.data_range
            model = entry.load(weights, device=device)
            for p in model.parameters():
                p.requires_grad = False
            official_psnrs: list[float] = []

            def official(save: bool, _m: nn.Module = model, _dr: float = data_range) -> None:
                out = tmp_path / "official_sr" if save else None
                if out is not None:
                    out.mkdir(exist_ok=True)
                official_psnrs[:] = official_loop(_m, pairs, _dr, device, None if out is None else str(out))

            kit_records: dict[str, dict[str, Any]] = {}

            def kit(label: str, workers: int | None, save: bool, _name: str = name, _e: Any = entry,
                    _w: str | None = weights) -> None:
                extra: dict[str, Any] = {"workers": workers}
                if save:
                    extra["save_sr"] = str(tmp_path / "kit_sr")
                options = EvalOptions(track="psnr", data=str(tmp_path / "data"), device=str(device), progress=False,
                                      weights={_name: _w} if _w else {}, extra=extra)
                (rec,) = list(evaluate([_e], options))
                if rec.get("status") != "ok":
                    sys.exit(f"{_name}: the kit's psnr track failed: {rec.get('error')}")
                kit_records[label] = rec

            configs: dict[str, Callable[[], None]] = {
                "official (saves SR)": lambda: official(True),
                "official, no save": lambda: official(False),
                "kit pipelined": lambda: kit("pipelined", None, False),
                "kit serial": lambda: kit("serial", 0, False),
                "kit pipelined --save-sr": lambda: kit("pipelined_save", None, True),
            }
            rounds = args.rlfn_rounds if (name != "free_x4" and args.rlfn_rounds) else args.rounds
            times: dict[str, list[float]] = {k: [] for k in configs}
            for r in range(rounds):
                order = list(configs)
                order = order[r % len(order):] + order[:r % len(order)]
                for label in order:
                    t = time.perf_counter()
                    configs[label]()
                    times[label].append(time.perf_counter() - t)
                print(f"{name} round {r + 1}/{rounds}: "
                      + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in configs), flush=True)
            diffs = [max(abs(a["psnr_db"] - b) for a, b in zip(rec["images"], official_psnrs))
                     for rec in kit_records.values()]
            max_diff = max(diffs)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"\n{name}: {args.images} images, median of {rounds} rounds; max |PSNR kit - official| = "
                  f"{max_diff:.3g} dB (mean {kit_records['pipelined']['psnr_db']:.6f} dB)")
            for label, t in med.items():
                print(f"  {label:26s} {t:7.2f} s  {args.images / t:6.2f} img/s")
            ratios = {"kit pipelined / official, no save": med["official, no save"] / med["kit pipelined"],
                      "kit --save-sr / official (saves SR)": med["official (saves SR)"] / med["kit pipelined --save-sr"],
                      "kit pipelined / official (saves SR)": med["official (saves SR)"] / med["kit pipelined"],
                      "kit pipelined / kit serial": med["kit serial"] / med["kit pipelined"]}
            for label, ratio in ratios.items():
                print(f"  throughput ratio {label:38s} {ratio:5.2f}x")
            if max_diff > 1e-9:
                sys.exit(f"{name}: the kit's PSNR differs from the official loop's by {max_diff} dB")
            summary["models"][name] = {"seconds": times, "median_s": med, "ratios": ratios,
                                       "max_psnr_diff_db": max_diff}
            print(flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
