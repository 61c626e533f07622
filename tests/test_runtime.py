"""Runtime timers and the efficiency tracks: statistics, call order, failure handling. No assertion on a timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.eval.pipeline import to_inputs
from ntirekit.eval.track import EvalOptions
from ntirekit.measure import runtime as R

# --- statistics ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summarize_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    times = rng.lognormal(mean=2.0, sigma=0.3, size=37)
    s = R.summarize(times.tolist(), "robust")
    assert s["median"] == pytest.approx(np.median(times))
    assert s["mean"] == pytest.approx(np.mean(times))
    assert s["iqr"] == pytest.approx(np.percentile(times, 75) - np.percentile(times, 25))
    assert s["cv"] == pytest.approx(np.std(times) / np.mean(times))
    assert s["min"] == pytest.approx(times.min()) and s["max"] == pytest.approx(times.max())
    assert s["n"] == 37 and s["timer"] == "robust" and s["unit"] == "ms"


def test_summarize_small_cases() -> None:
    s = R.summarize([4.0, 1.0, 3.0, 2.0], "ntire")
    assert (s["median"], s["mean"], s["iqr"], s["min"]) == (2.5, 2.5, 1.5, 1.0)
    assert R.headline(s) == 2.5
    assert R.summarize([5.0], "robust")["iqr"] == 0.0
    with pytest.raises(ValueError):
        R.summarize([], "robust")


def test_headline_is_mean_for_ntire_and_median_for_robust() -> None:
    times = [1.0, 1.0, 10.0]
    assert R.headline(R.summarize(times, "ntire")) == pytest.approx(4.0)
    assert R.headline(R.summarize(times, "robust")) == 1.0


def test_pool_runs() -> None:
    runs = [R.summarize([1.0, 2.0, 3.0], "robust"), R.summarize([3.0, 4.0, 5.0], "robust"),
            R.summarize([2.0, 2.0, 2.0], "robust")]
    pooled = R.pool_runs(runs)
    assert pooled["runs"] == [2.0, 4.0, 2.0]
    assert pooled["median"] == 2.0 and pooled["n"] == 9 and pooled["n_runs"] == 3
    assert R.pool_runs(runs[:1]) == runs[0]


# --- call order with fake models -------------------------------------------------------------------------------------

class Recorder:
    """A fake model: records (name, input id) for every call."""

    def __init__(self, name: str, log: list[tuple[str, int]], fail_at: int | None = None):
        self.name, self.log, self.fail_at, self.calls = name, log, fail_at, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError(f"{self.name} broke")
        self.log.append((self.name, int(x.flatten()[0].item())))
        return x


def make_inputs(n: int) -> list[torch.Tensor]:
    return [torch.full((1, 3, 2, 2), float(i)) for i in range(n)]


def test_robust_timer_interleaves_round_robin() -> None:
    log: list[tuple[str, int]] = []
    models = {n: Recorder(n, log) for n in ("a", "b", "c")}
    stats = R.time_robust(models, make_inputs(2), warmup=2, repeats=3, device="cpu")
    warm = [(n, 0) for _ in range(2) for n in "abc"]                  # warm-up: input 0 (then 1, ...), each entry
    warm[3:] = [(n, 1) for n in "abc"]
    timed = [(n, i) for i in range(2) for _ in range(3) for n in "abc"]
    assert log == warm + timed
    assert set(stats) == {"a", "b", "c"}
    assert all(s["n"] == 6 and s["timer"] == "robust" and s["unit"] == "ms" for s in stats.values())
    assert list(R.robust_order(["a", "b"], 2, 2)) == [(0, 0, "a"), (0, 0, "b"), (0, 1, "a"), (0, 1, "b"),
                                                      (1, 0, "a"), (1, 0, "b"), (1, 1, "a"), (1, 1, "b")]


def test_ntire_timer_runs_entries_one_after_another_without_warmup() -> None:
    log: list[tuple[str, int]] = []
    models = {n: Recorder(n, log) for n in ("a", "b")}
    stats = R.time_ntire(models, make_inputs(3), device="cpu")
    assert log == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert stats["a"]["n"] == 3 and stats["a"]["timer"] == "ntire" and len(stats["a"]["per_input"]) == 3
    assert stats["a"]["mean"] == pytest.approx(np.mean(stats["a"]["per_input"]))


def test_per_entry_inputs() -> None:
    log: list[tuple[str, int]] = []
    models = {"a": Recorder("a", log), "b": Recorder("b", log)}
    R.time_robust(models, {"a": make_inputs(1), "b": [torch.full((1, 3, 2, 2), 7.0)]}, warmup=0, repeats=1)
    assert log == [("a", 0), ("b", 7)]
    with pytest.raises(KeyError):
        R.time_robust(models, {"a": make_inputs(1)}, warmup=0, repeats=1)
    with pytest.raises(ValueError):
        R.time_robust(models, {"a": make_inputs(1), "b": make_inputs(2)}, warmup=0, repeats=1)


def test_a_failing_entry_is_dropped_and_the_others_go_on() -> None:
    log: list[tuple[str, int]] = []
    models = {"a": Recorder("a", log), "bad": Recorder("bad", log, fail_at=3), "c": Recorder("c", log)}
    errors: dict[str, BaseException] = {}
    stats = R.time_robust(models, make_inputs(2), warmup=1, repeats=2, errors=errors)
    assert set(stats) == {"a", "c"} and "broke" in str(errors["bad"])
    assert stats["a"]["n"] == 4
    assert sum(1 for n, _ in log if n == "bad") == 2                 # never called again after failing
    with pytest.raises(RuntimeError):
        R.time_robust({"bad": Recorder("bad", [], fail_at=1)}, make_inputs(1))
    errors = {}
    assert R.time_ntire({"bad": Recorder("bad", [], fail_at=2)}, make_inputs(2), errors=errors) == {}
    assert "bad" in errors


def test_threads_are_fixed_and_restored() -> None:
    seen: list[int] = []
    before = torch.get_num_threads()

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return x

    R.time_robust({"m": model}, make_inputs(1), warmup=1, repeats=2, threads=1)
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == before


def test_robust_timer_uses_inference_mode() -> None:
    modes: list[bool] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        modes.append(torch.is_inference_mode_enabled())
        return x

    R.time_robust({"m": model}, make_inputs(1), warmup=0, repeats=1)
    assert modes == [True]


def test_time_models_dispatch_and_unknown_timer() -> None:
    out = R.time_models({"m": lambda x: x}, make_inputs(2), "ntire", warmup=5, repeats=9)
    assert out["m"]["n"] == 2
    with pytest.raises(ValueError):
        R.time_models({"m": lambda x: x}, make_inputs(1), "fastest")


def test_real_model_on_cpu_gives_positive_figures() -> None:
    conv = nn.Conv2d(3, 3, 3, padding=1).eval()
    stats = R.time_robust({"conv": conv}, make_inputs(2), warmup=1, repeats=2)["conv"]
    assert stats["min"] > 0 and stats["median"] >= stats["min"] and stats["n"] == 4


def test_to_inputs_scales_to_data_range() -> None:
    img = np.full((5, 7, 3), 255, dtype=np.uint8)
    x = to_inputs([img], 1.0, "cpu")[0]
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32 and float(x.max()) == 1.0
    assert float(to_inputs([img], 255.0, "cpu")[0].max()) == 255.0


# --- the efficiency tracks on tiny entries ---------------------------------------------------------------------------

BROKEN = '''
from torch import nn

class Broken(nn.Module):
    def __init__(self, scale=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        raise RuntimeError("this entry always fails")
'''


@pytest.fixture()
def tiny_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from ntirekit.core.registry import discover
    from tests.helpers.entries import write_entry

    write_entry(tmp_path, "tiny_a")
    write_entry(tmp_path, "tiny_b", data_range=255.0)
    write_entry(tmp_path, "tiny_broken", model_code=BROKEN, factory="model.py:Broken")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)]
    monkeypatch.setattr("ntirekit.eval.tracks.efficiency.timing_images", lambda *args, **kwargs: images)
    registry = discover([tmp_path], include_defaults=False)
    return [registry[n] for n in ("tiny_a", "tiny_broken", "tiny_b")]


@pytest.mark.parametrize("track", ["complexity", "runtime", "overall"])
def test_efficiency_tracks(tiny_entries: list[Any], track: str) -> None:
    from ntirekit.eval.tracks.efficiency import evaluate

    options = EvalOptions(track=track, device="cpu", warmup=1, repeats=2, input_shape=(1, 3, 16, 16),
                          progress=False, threads=1)
    records = {r["entry"]: r for r in evaluate(tiny_entries, options)}
    assert set(records) == {"tiny_a", "tiny_b", "tiny_broken"}
    assert records["tiny_broken"]["status"] == "failed"
    assert "always fails" in records["tiny_broken"]["error"]
    for name in ("tiny_a", "tiny_b"):
        rec = records[name]
        assert rec["status"] == "ok" and rec["track"] == track
        assert rec["params"] == 3 * 48 * 9 + 48
        assert rec["macs_ntire2022"] == rec["macs_fvcore"] == 9 * 3 * 48 * 256
        assert rec["activations"] == rec["activations_fvcore"] == 48 * 256 and rec["convs"] == 1
        assert rec["input_shape"] == [1, 3, 16, 16] and rec["warnings"] == [] and rec["weights"] == "random"
        assert rec["device"]["kind"] == "cpu" and rec["device"]["threads"] == 1
        if track == "complexity":
            assert "runtime_ms" not in rec and rec["max_memory_mib"] is None
        else:
            rt = rec["runtime_ms"]
            assert {"median", "mean", "iqr", "cv", "min", "timer", "n", "unit"} <= set(rt)
            assert rt["timer"] == "robust" and rt["n"] == 4 and rt["unit"] == "ms"
            assert rec["memory_kind"] == "cpu_estimate" and rec["max_memory_mib"] > 0
            assert rec["nvml_memory_mib"] is None


def test_runtime_track_with_ntire_timer_and_runs(tiny_entries: list[Any]) -> None:
    from ntirekit.eval.tracks.efficiency import evaluate

    options = EvalOptions(track="runtime", device="cpu", timer="ntire", runs=2, input_shape=(1, 3, 16, 16),
                          progress=False)
    records = {r["entry"]: r for r in evaluate(tiny_entries[:1], options)}
    rt = records["tiny_a"]["runtime_ms"]
    assert rt["timer"] == "ntire" and rt["n_runs"] == 2 and len(rt["runs"]) == 2 and rt["n"] == 4


def test_runner_writes_efficiency_records(tiny_entries: list[Any], tmp_path: Path) -> None:
    from ntirekit.core.records import read_result
    from ntirekit.eval.runner import run_track

    options = EvalOptions(track="complexity", device="cpu", input_shape=(1, 3, 16, 16), progress=False)
    records = run_track(tiny_entries, options, out_dir=tmp_path / "out")
    assert [r["entry"] for r in records] == ["tiny_a", "tiny_broken", "tiny_b"]
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 3
    assert read_result(files[0])["track"] == "complexity"
