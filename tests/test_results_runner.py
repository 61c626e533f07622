"""Result records, atomic writes, per-entry failure isolation and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.core.device import fingerprint, fingerprint_id
from ntirekit.core.records import ResultError, failure, read_result, record, result_path, write_json_atomic
from ntirekit.core.registry import discover
from ntirekit.core.spec import Entry
from ntirekit.eval import runner
from ntirekit.eval.guard import guard
from ntirekit.eval.inference import NonFiniteOutput, run_tiled, upscale_image
from ntirekit.eval.track import EvalOptions, Track
from ntirekit.eval.tracks import TRACKS
from tests.helpers.entries import write_entry


def test_atomic_write_leaves_no_temporary_and_strict_json(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "r.json", {"a": float("nan"), "b": [1.5, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None]}
    # numpy/torch scalars go through ``.item()``: a NaN among them must not make the write fail
    path = write_json_atomic(tmp_path / "r.json", {"a": np.float32("nan"), "b": torch.tensor(float("inf")),
                                                   "c": np.float32(1.5)})
    assert json.loads(path.read_text()) == {"a": None, "b": None, "c": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "r.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failure_is_one_line() -> None:
    fp = fingerprint("cpu")
    rec = failure("x", "psnr", fp, RuntimeError("first line\nsecond line"))
    assert rec["status"] == "failed" and rec["error"] == "RuntimeError: first line"


def test_result_path_names_device(tmp_path: Path) -> None:
    fp = fingerprint("cpu")
    assert result_path(tmp_path, "rlfn", "psnr", fp).name == f"rlfn__psnr__{fingerprint_id(fp)}.json"
    assert fingerprint_id(fp).startswith("cpu-") and f"t{torch.get_num_threads()}" in fingerprint_id(fp)


def test_read_result_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ResultError, match="not a JSON file"):
        read_result(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ResultError, match="not an ntirekit result"):
        read_result(tmp_path / "other.json")


def _fake_track(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    fp = fingerprint("cpu")
    for entry in entries:
        failed: list[dict[str, Any]] = []
        with guard(entry, options.track, fp, failed):
            model = entry.load(pretrained=False)
            y = model(torch.ones(1, 3, 4, 4))
            yield record(entry.name, options.track, fp, mean=float(y.detach().mean()))
        yield from failed


BROKEN = "import torch\nclass TinySR(torch.nn.Module):\n    def __init__(self, scale=4):\n        super().__init__()\n" \
         "    def forward(self, x):\n        raise RuntimeError('exploded')\n"


def test_one_broken_entry_does_not_stop_or_spoil_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_entry(tmp_path / "e", "a")
    write_entry(tmp_path / "e", "b", model_code=BROKEN)
    write_entry(tmp_path / "e", "c")
    registry = discover([tmp_path / "e"], include_defaults=False)
    monkeypatch.setitem(TRACKS, "fake", Track("fake", _fake_track, "esr", times=False, record_fields=("mean",)))
    out = tmp_path / "out"
    records = runner.run_track(list(registry.values()), EvalOptions(track="fake"), out)
    assert [(r["entry"], r["status"]) for r in records] == [("a", "ok"), ("b", "failed"), ("c", "ok")]
    assert records[1]["error"] == "RuntimeError: exploded"
    assert len(list(out.glob("*.json"))) == 3
    # resume: only the failed entry is evaluated again
    seen: list[str] = []

    def counting(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
        seen.extend(e.name for e in entries)
        yield from _fake_track(entries, options)

    monkeypatch.setitem(TRACKS, "fake", Track("fake", counting, "esr", times=False, record_fields=("mean",)))
    again = runner.run_track(list(registry.values()), EvalOptions(track="fake"), out, resume=True)
    assert seen == ["b"]
    assert [r["entry"] for r in again] == ["a", "b", "c"]


class _Local(nn.Module):
    """3x3 conv then nearest x2: receptive field of 1 LR pixel around each output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_tiled_equals_whole_for_a_local_model() -> None:
    torch.manual_seed(0)
    model = _Local().eval()
    x = torch.rand(1, 3, 23, 37)
    whole = run_tiled(model, x, 2)
    tiled = run_tiled(model, x, 2, tile=8, overlap=2)
    assert torch.allclose(whole, tiled, atol=1e-6)
    no_context = run_tiled(model, x, 2, tile=8, overlap=0)
    assert not torch.allclose(whole, no_context, atol=1e-6)  # the overlap is what makes it exact


def test_output_convention_and_nan() -> None:
    lr = np.full((5, 6, 3), 100, np.uint8)
    sr = upscale_image(nn.Upsample(scale_factor=2), lr, scale=2, data_range=255.0)
    assert sr.shape == (10, 12, 3) and sr.dtype == np.uint8 and (sr == 100).all()

    class Nan(nn.Module):
        def forward(self, x):
            return x * float("nan")

    with pytest.raises(NonFiniteOutput):
        upscale_image(Nan(), lr, scale=1, data_range=1.0)
