"""Peak memory of a forward pass.

* CUDA (the challenge figure): ``torch.cuda.max_memory_allocated() / 2**20`` (MiB) over the forward of every input,
  one input on the device at a time, with the peak statistics reset before each entry (the official harness never
  resets them, so there its figure for the test split includes the valid split's peak). Beside it, the memory NVML
  reports for this process (CUDA context and the caching allocator's reserve included), where NVML can see the
  process (not always inside containers: then ``None``).
* CPU: an estimate, labelled ``"cpu_estimate"``: parameters and buffers + the input + the peak of the storages
  created during the forward and still alive, tracked by a ``TorchDispatchMode`` that registers every output storage
  and notices its release through a weak reference. Workspace that a kernel allocates internally (oneDNN scratch
  pads) and allocator overheads are not seen; views and in-place results add nothing.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MIB = float(2 ** 20)


class StoragePeakTracker(TorchDispatchMode):
    """Tracks the bytes of live tensor storages while active; ``peak`` is the highest total seen after any op.

    Storages of tensors passed to :meth:`keep` (parameters, the input) count from the start; every storage an op
    returns that is not yet tracked is added, and it is dropped once nothing holds it any more.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0
        self.ops = 0

    def _track(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without storage (sparse, nested, ...)
            return
        ref = StorageWeakRef(storage)
        if ref.cdata in self._live:
            return
        nbytes = int(storage.nbytes())
        self._live[ref.cdata] = (ref, nbytes)
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def keep(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            self._track(t)

    def _purge(self) -> None:
        dead = [k for k, (ref, _) in self._live.items() if ref.expired()]
        for k in dead:
            self.current -= self._live.pop(k)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self._purge()
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def _state_tensors(model: nn.Module) -> list[torch.Tensor]:
    if not isinstance(model, nn.Module):
        return []
    return [*model.parameters(), *model.buffers()]


def cpu_peak_bytes(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Peak live bytes during ``model(x)`` on CPU: ``{"peak", "state", "input", "ops"}`` (``peak`` includes both)."""
    state = _state_tensors(model)
    tracker = StoragePeakTracker()
    tracker.keep(state)
    state_bytes = tracker.current
    tracker.keep([x])
    input_bytes = tracker.current - state_bytes
    with torch.no_grad(), tracker:
        out = model(x)
    del out
    return {"peak": tracker.peak, "state": state_bytes, "input": input_bytes, "ops": tracker.ops}


def cpu_estimate_mib(model: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """The CPU estimate over several inputs (one at a time): the highest per-input peak, in MiB."""
    return max(cpu_peak_bytes(model, x)["peak"] for x in inputs) / MIB


def cuda_max_allocated_mib(model: nn.Module, inputs: Sequence[torch.Tensor], device: torch.device) -> float:
    """``torch.cuda.max_memory_allocated`` over the forward of each input (moved to the device one at a time)."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        for x in inputs:
            xd = x.to(device)
            out = model(xd)
            del out, xd
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / MIB


def _nvml_handle(pynvml: Any, device: torch.device) -> Any:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        try:
            text = str(uuid)
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        except Exception:
            pass
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        domain = getattr(props, "pci_domain_id", 0)
        dev = getattr(props, "pci_device_id", 0)
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(f"{domain:08x}:{bus:02x}:{dev:02x}.0")
        except Exception:
            pass
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    return None


def nvml_process_mib(device: torch.device) -> float | None:
    """Device memory NVML attributes to this process, in MiB; ``None`` where NVML or the process is not visible."""
    try:
        import pynvml  # the nvidia-ml-py package
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = _nvml_handle(pynvml, device)
        if handle is None:
            return None
        pid = os.getpid()
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(pynvml, getter, None)
            if fn is None:
                continue
            for proc in fn(handle):
                used = getattr(proc, "usedGpuMemory", None)
                if proc.pid == pid and used is not None:
                    return used / MIB
        return None
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def measure_memory(model: nn.Module, inputs: Sequence[torch.Tensor],
                   device: str | torch.device = "cpu") -> dict[str, Any]:
    """``{"max_memory_mib", "memory_kind", "nvml_memory_mib"}`` for ``model`` (already on ``device``)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return {"max_memory_mib": cuda_max_allocated_mib(model, inputs, dev),
                "memory_kind": "cuda_max_memory_allocated", "nvml_memory_mib": nvml_process_mib(dev)}
    return {"max_memory_mib": cpu_estimate_mib(model, [x.to(dev) for x in inputs]), "memory_kind": "cpu_estimate",
            "nvml_memory_mib": None}
