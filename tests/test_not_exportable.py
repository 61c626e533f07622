"""An entry whose network cannot be exported: a trusted one is measured as its eager module and says so; an
untrusted twin in the same run is not measured (its figures would come from code it controls) and its record says
why. Counts of the trusted one are checked against the convolution's MACs computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.entries import write_entry
from ntirekit.core.registry import discover
from ntirekit.core.trust import UNTRUSTED_MARKER
from ntirekit.data.images import write_image
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions

# a real x4 model whose forward leaves torch through numpy: torch.export cannot trace it
NUMPY_MODEL = '''
import numpy as np
import torch
from torch import nn


class NumpySR(nn.Module):
    def __init__(self, scale: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        y = self.shuffle(self.conv(x))
        return torch.from_numpy(np.ascontiguousarray(y.detach().cpu().numpy()))
'''


@pytest.mark.parametrize("track", ["complexity", "runtime"])
def test_a_trusted_entry_is_measured_eagerly_and_an_untrusted_twin_is_not(tmp_path: Path, track: str) -> None:
    write_entry(tmp_path / "trusted", "numpy_trusted", model_code=NUMPY_MODEL, factory="model.py:NumpySR")
    write_entry(tmp_path / "untrusted", "numpy_untrusted", model_code=NUMPY_MODEL, factory="model.py:NumpySR")
    (tmp_path / "untrusted" / UNTRUSTED_MARKER).write_text("")
    rng = np.random.default_rng(0)
    for name in ("0801", "0802"):
        write_image(tmp_path / "set" / "HR" / f"{name}.png", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
        write_image(tmp_path / "set" / "LR_bicubic" / "X4" / f"{name}x4.png",
                    rng.integers(0, 256, (8, 10, 3), dtype=np.uint8))
    registry = {**discover([tmp_path / "trusted"]), **discover([tmp_path / "untrusted"])}
    options = EvalOptions(track=track, data=str(tmp_path / "set"), device="cpu", progress=False,
                          input_shape=(1, 3, 16, 16), warmup=1, repeats=2, extra={"fvcore": False})
    records = {r["entry"]: r for r in run_track([registry["numpy_trusted"], registry["numpy_untrusted"]], options)}

    trusted, untrusted = records["numpy_trusted"], records["numpy_untrusted"]
    assert trusted["status"] == "ok" and trusted["measured"] == "eager", trusted.get("error")
    assert any(w.startswith("not exportable: ") and w.endswith("measured as the eager module (trusted)")
               for w in trusted["warnings"])
    assert trusted["params"] == 3 * 48 * 9 + 48                   # conv 3 -> 48, 3x3, with bias
    assert trusted["macs_ntire2022"] == 16 * 16 * 48 * 3 * 9        # one MAC per weight per output pixel
    if track == "runtime":
        assert trusted["runtime_ms"]["n"] == 2 * 2 and trusted["runtime_ms"]["median"] > 0   # 2 images x 2 repeats
    assert untrusted["status"] == "failed" and untrusted["failure_kind"] == "not-exportable"
    assert untrusted["error"].startswith("not exportable: ")
    assert untrusted.get("params") is None and untrusted.get("runtime_ms") is None
