"""Nothing lost: records keyed by data/split/protocol, failures beside good records, a bad --data as one line before
any entry runs, an interrupted timing run that keeps what was complete; splits in records and the table header."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.records import iter_result_files, split_of
from ntirekit.core.registry import discover
from ntirekit.data.images import write_image
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from tests.helpers.entries import write_entry

BROKEN = "import torch\nclass TinySR(torch.nn.Module):\n    def __init__(self, scale=4):\n        super().__init__()\n" \
         "    def forward(self, x):\n        raise RuntimeError('exploded')\n"
TINY_PARAMS = 3 * 48 * 9 + 48      # the tiny x4 entry: one 3x3 conv 3 -> 3*4*4 with bias


def _image_set(folder: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for name in ("a", "b"):
        write_image(folder / "HR" / f"{name}.png", rng.integers(0, 256, (32, 36, 3), dtype=np.uint8))
        write_image(folder / "LR_bicubic" / "X4" / f"{name}x4.png", rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
    return folder


def _eval(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["eval", "--allow-random", *args])
    return result.exit_code, result.output


def _records(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    entries = tmp_path / "entries"
    write_entry(entries, "tiny")
    return entries, _image_set(tmp_path / "Set5ish", 0), _image_set(tmp_path / "Mini_valid", 1)


@pytest.mark.slow
def test_runs_on_other_data_and_protocols_never_overwrite(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    entries, set_a, set_b = world
    out = tmp_path / "out"
    runs = [(set_a, "challenge"), (set_a, "paper"), (set_b, "challenge")]
    for data, protocol in runs:
        code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--data", str(data),
                             "--protocol", protocol, "--out", str(out), "--quiet")
        assert code == 0, output
    records = _records(out)
    assert len(records) == 3                                        # one file per (data, protocol), none replaced
    assert sorted((Path(r["options"]["data"]).name, r["protocol"]) for r in records.values()) == \
        sorted((d.name, p) for d, p in runs)
    assert all(r["status"] == "ok" for r in records.values())
    names = sorted(records)
    # the data part of a file name is the dataset's identity: its name and a digest of its file list and sizes
    assert any(re.search(r"__Set5ish-[0-9a-f]{8}\.paper__", n) for n in names)
    assert any(re.search(r"__Mini_valid-[0-9a-f]{8}\.valid\.challenge__", n) for n in names)
    paper, challenge = (next(r for r in records.values() if r["protocol"] == p and "Set5ish" in r["options"]["data"])
                        for p in ("paper", "challenge"))
    assert paper["psnr_db"] != challenge["psnr_db"]                 # Y-channel vs RGB figures: really two runs


@pytest.mark.slow
def test_split_in_records_and_table_header(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    entries, set_a, set_b = world
    code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--data", str(set_b),
                         "--out", str(tmp_path / "o1"), "--quiet")
    assert code == 0, output
    (rec,) = _records(tmp_path / "o1").values()
    assert rec["split"] == "valid" and rec["protocol"] == "challenge"      # the folder name says valid
    assert "split: valid, protocol: challenge" in output
    code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--data", str(set_a),
                         "--split", "test", "--protocol", "paper", "--out", str(tmp_path / "o2"), "--quiet")
    assert code == 0, output
    (rec,) = _records(tmp_path / "o2").values()
    assert rec["split"] == "test" and rec["protocol"] == "paper"
    assert "split: test, protocol: paper" in output
    assert split_of("DIV2K_valid") == "valid" and split_of("LSDIR-test") == "test" and split_of("Set5") is None


@pytest.mark.slow
def test_bad_data_is_one_line_and_leaves_good_records(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    entries, set_a, _ = world
    write_entry(entries, "tiny2")
    out = tmp_path / "out"
    code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--entry", "tiny2",
                         "--data", str(set_a), "--out", str(out), "--quiet")
    assert code == 0, output
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert len(before) == 2
    for data in (str(tmp_path / "Set5ih"), str(set_a)[:-1]):       # mistyped: no such folder
        code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--entry", "tiny2",
                             "--data", data, "--out", str(out), "--quiet")
        assert code != 0
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:"), output        # once, not once per entry
        assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before   # nothing written, nothing lost


@pytest.mark.slow
def test_a_failure_is_written_beside_a_good_record(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    entries, set_a, _ = world
    out = tmp_path / "out"
    args = ("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--data", str(set_a), "--out", str(out),
            "--quiet")
    assert _eval(*args)[0] == 0
    (good,) = out.glob("*.json")
    good_bytes = good.read_bytes()
    broken = write_entry(tmp_path / "broken_entries", "tiny", model_code=BROKEN).parent   # the same name, now broken
    assert _eval(*args[:2], "--entries", str(broken), *args[4:])[0] == 1
    assert good.read_bytes() == good_bytes
    failed = good.with_name(good.stem + "__failed.json")
    assert json.loads(failed.read_text())["status"] == "failed"
    assert iter_result_files([out]) == [good]                       # readers take the good one


def _runtime_options() -> EvalOptions:
    return EvalOptions(track="runtime", device="cpu", warmup=0, repeats=1, progress=False,
                       extra={"images": 1, "crop": 16})


@pytest.mark.slow
def test_interrupted_timing_keeps_counts_and_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = tmp_path / "entries"
    for name in ("t1", "t2"):
        write_entry(entries, name)
    registry = discover([entries], include_defaults=False)
    chosen = [registry["t1"], registry["t2"]]
    out = tmp_path / "out"

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ntirekit.eval.tracks.efficiency.time_entries", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_track(chosen, _runtime_options(), out_dir=out)
    kept = _records(out)
    assert len(kept) == 2
    for rec in kept.values():
        assert rec["status"] == "partial" and rec["partial"] is True and "runtime_ms" not in rec
        assert rec["params"] == TINY_PARAMS and rec["max_memory_mib"] is not None
    monkeypatch.undo()
    records = run_track(chosen, _runtime_options(), out_dir=out, resume=True)      # completes them
    assert [r["status"] for r in records] == ["ok", "ok"] and all(r["runtime_ms"] for r in records)
    assert sorted(_records(out)) == sorted(kept)                    # the same files, now complete
    assert all(r["status"] == "ok" for r in _records(out).values())

    monkeypatch.setattr("ntirekit.eval.tracks.efficiency.time_entries", interrupted)
    with pytest.raises(KeyboardInterrupt):                          # an interrupted rerun spoils no good record
        run_track(chosen, _runtime_options(), out_dir=out)
    files = _records(out)
    assert sum(r["status"] == "ok" for r in files.values()) == 2
    assert sum(r["status"] == "partial" and n.endswith("__partial.json") for n, r in files.items()) == 2
    assert all(json.loads(p.read_text())["status"] == "ok" for p in iter_result_files([out]))


@pytest.mark.slow
def test_first_line_says_what_eval_will_do(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    entries, _, set_b = world
    code, output = _eval("--track", "psnr", "--entries", str(entries), "--entry", "tiny", "--data", str(set_b),
                         "--out", str(tmp_path / "o"))
    assert code == 0, output
    assert output.splitlines()[0] == (f"eval: 1 entry (tiny) on track psnr, data {set_b} (split: valid, protocol: "
                                      "challenge), device cpu; one bar per entry with its ETA")


def test_timing_bar_counts_every_timed_call() -> None:
    import torch
    from torch import nn

    from ntirekit.measure.runtime import time_models, timed_calls

    models = {"a": nn.Conv2d(3, 3, 1), "b": nn.Conv2d(3, 3, 3, padding=1)}
    inputs = {n: [torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 6, 6)] for n in models}
    for timer, expected in (("robust", 2 * 2 * 3), ("ntire", 2 * 2)):     # entries x inputs (x repeats)
        ticks: list[int] = []
        robust = {"warmup": 1, "repeats": 3} if timer == "robust" else {}
        time_models(models, inputs, timer, device="cpu", tick=lambda: ticks.append(1), **robust)
        assert len(ticks) == timed_calls(models, inputs, timer, repeats=3) == expected


def test_bad_data_stops_jobs_before_any_is_submitted(world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from ntirekit.data import DataError
    from ntirekit.jobs import run_jobs
    from ntirekit.jobs.executors import ExecutorSettings

    entries, _, _ = world
    registry = discover([entries], include_defaults=False)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        run_jobs([registry["tiny"]], EvalOptions(track="psnr", data=str(tmp_path / "nope"), progress=False), out,
                 ExecutorSettings("local"))
    assert not out.exists() or not any(out.rglob("*.json"))         # no job ran, no record written
