"""The load probe: does an entry build, load its weights strictly and give an output of the right size?

``check --load``, ``pack`` and ``import-ntire --check`` run it in the jail (:func:`ntirekit.eval.isolate.call_isolated`):
it runs the entry's code. Its result is a verdict (and the notes of the load), never a figure.
"""

from __future__ import annotations

from typing import Any

import torch

from ntirekit.core.spec import Entry, input_contract
from ntirekit.eval.inference import NonFiniteOutput

#: the side of the probe input for image entries that accept anything (pixels)
PROBE_SIZE = 24


def load_probe(entry: Entry, device: str = "cpu") -> dict[str, Any]:
    """Build ``entry``, load its weights strictly, run one forward pass on a random input; raise on any problem.

    The input is :data:`PROBE_SIZE` pixels square, raised to the entry's input contract (``min_size``,
    ``multiple``), then 64 and 256 pixels when the model's forward raises on the smaller one (a team model that
    downsamples may need more than 24x24); a video entry gets its contract's ``frames`` frames. Returns
    ``output_shape`` and the entry's :attr:`~ntirekit.core.spec.Entry.notes` (a CUDA constructor built on the CPU, an
    unwrapped checkpoint, the keys a non-strict load left missing or unused).
    """
    model = entry.load(device=device)
    contract = input_contract(entry)
    for size in dict.fromkeys(contract.padded(s, s)[0] for s in (PROBE_SIZE, 64, 256)):
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, size, size, generator=generator) * contract.data_range
        if contract.frames > 1:
            x = x.unsqueeze(1).repeat(1, contract.frames, 1, 1, 1)
        try:
            with torch.inference_mode():
                y = model(x.to(device))
            break
        except RuntimeError:
            if size >= contract.padded(256, 256)[0]:
                raise
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"the model returns {type(y).__name__}, not a tensor")
    scale = entry.spec.scale
    want = (size * scale, size * scale)
    if tuple(y.shape[-2:]) != want or y.shape[-3] != 3:
        raise ValueError(f"a {size}x{size} input gives an output of shape {tuple(y.shape)}; a x{scale} model "
                         f"gives 3x{want[0]}x{want[1]}")
    if not bool(torch.isfinite(y).all()):
        raise NonFiniteOutput("model output contains NaN or inf")
    return {"output_shape": list(y.shape), **entry.notes}
