"""Efficiency measurement: params, MACs (two challenge conventions), activations, #conv, runtime, memory, device.

* :mod:`ntirekit.measure.counts`: ``params``, ``macs_ntire2022`` (the NTIRE 2022/2023 hook counter),
  ``macs_fvcore`` (NTIRE 2024 on), ``activations_and_convs``, ``activations_fvcore``, and :func:`count` with the
  fvcore-vs-torch cross-check and the invisible-convolution detector;
* :mod:`ntirekit.measure.runtime`: the ``ntire`` (official loop) and ``robust`` (warm-up, interleaved repeats,
  median) timers;
* :mod:`ntirekit.measure.memory`: ``torch.cuda.max_memory_allocated`` (+ NVML) on CUDA, a tracked estimate on CPU;
* :mod:`ntirekit.core.device`: the device fingerprint filed with every figure.

Submodules are imported on use; this package imports nothing at import time.
"""
