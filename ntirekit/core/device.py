"""Device fingerprint: what ran a measurement, recorded in every result.

Results from different fingerprints are never mixed silently: :func:`fingerprint_id` is the short, file-name-safe key
(device kind and name, precision, torch and CUDA versions, CPU thread count) under which figures are filed.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from typing import Any

import torch

import ntirekit


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when present, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from NVML, or None where NVML is absent."""
    try:
        import pynvml  # provided by the nvidia-ml-py package

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None


def fingerprint(device: str | torch.device | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Everything that changes a timing: device, GPU, driver, CUDA, cuDNN, torch, CPU model, threads, precision."""
    dev = resolve_device(device)
    fp: dict[str, Any] = {
        "device": str(dev),
        "kind": dev.type,
        "gpu": None,
        "driver": None,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "torch": torch.__version__,
        "ntirekit": ntirekit.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "precision": precision,
    }
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        fp["gpu"] = torch.cuda.get_device_name(index)
        fp["driver"] = nvidia_driver()
        fp["cudnn"] = torch.backends.cudnn.version()
    return fp


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def fingerprint_id(fp: dict[str, Any]) -> str:
    """A short file-name-safe key: e.g. ``cuda-nvidia-h100-80gb-hbm3-fp32-torch2.13.0-cu12.4`` or
    ``cpu-intel-xeon-...-t2-fp32-torch2.13.0``."""
    if fp["kind"] == "cuda":
        parts = ["cuda", _slug(fp["gpu"] or "gpu"), fp["precision"], f"torch{fp['torch'].split('+')[0]}",
                 f"cu{fp['cuda']}"]
    else:
        cpu = re.sub(r"\(r\)|\(tm\)|cpu|@.*$|processor", "", (fp["cpu"] or "cpu").lower())
        parts = ["cpu", _slug(cpu)[:40], f"t{fp['threads']}", fp["precision"], f"torch{fp['torch'].split('+')[0]}"]
    return "-".join(p for p in parts if p)


def comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two fingerprints may share a runtime table (same hardware, software and precision)."""
    keys = ("kind", "gpu", "driver", "cuda", "cudnn", "torch", "cpu", "threads", "precision")
    return all(a.get(k) == b.get(k) for k in keys)
