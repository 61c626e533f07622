"""``ntirekit regress``: passes on recorded figures, fails (listing every regression) when a count, a PSNR or a
runtime ratio is changed on purpose in a copy of the reference folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntirekit.cli.regress_cmd import regress as regress_cli
from ntirekit.core.device import fingerprint, fingerprint_id
import importlib

from ntirekit.eval.tracks import TRACKS
from ntirekit.eval.regress import RegressError, compare, figure, record_reference, regress
from tests.helpers.entries import write_entry

#: Deterministic figures: counts from the model, a PSNR-like figure from a fixed input, and a "runtime" that the
#: entry's [published].fake_ms sets (times of a real timer would make the test flaky).
REGRESS_TRACK = '''
import math
import torch
from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record
from ntirekit.eval.track import Track, TrackOption


def evaluate(entries, options):
    fp = fingerprint(resolve_device(options.device))
    for entry in entries:
        torch.manual_seed(0)
        model = entry.load(pretrained=False)
        x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            y = model(x)
        ref = torch.nn.functional.interpolate(x, scale_factor=entry.spec.scale, mode="nearest")
        mse = float(((y - ref) ** 2).mean())
        ms = float(entry.spec.published.get("fake_ms", 1.0)) * float(options.extra.get("slowdown", 1.0))
        params = sum(p.numel() for p in model.parameters())
        yield record(entry.name, options.track, fp, params=params, macs_ntire2022=params * 64, convs=1,
                     psnr_db=10 * math.log10(1 / mse), runtime_ms={"median": ms, "mean": ms, "timer": "robust"})


TRACKS = (Track("tinyreg", evaluate, "esr", times=True, record_fields=("params", "psnr_db", "runtime_ms"),
                options=(TrackOption("slowdown", float, 1.0, "multiplies the fake runtime"),)),)
'''


@pytest.fixture()
def regress_track(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    module_dir = tmp_path / "trackmod"
    module_dir.mkdir()
    (module_dir / "tinyreg_track.py").write_text(REGRESS_TRACK)
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setitem(TRACKS, "tinyreg", importlib.import_module("tinyreg_track").TRACKS[0])
    return "tinyreg"


@pytest.fixture()
def recorded(tmp_path: Path, regress_track: str) -> tuple[Path, Path]:
    """Entries ``base`` (the runtime baseline) and ``team01_a``, recorded in metrics/<this device's id>/."""
    roots = tmp_path / "entries"
    write_entry(roots, "base", extra_toml="\n[published]\nfake_ms = 10.0\n")
    write_entry(roots, "team01_a", extra_toml="\n[published]\nfake_ms = 20.0\n")
    folder = tmp_path / "metrics" / fingerprint_id(fingerprint("cpu"))
    records = record_reference(folder, entries=["base", "team01_a"], tracks=[regress_track], device="cpu",
                               entry_roots=[str(roots)])
    assert [r["status"] for r in records] == ["ok", "ok"]
    return folder, roots


def edit(folder: Path, entry: str, **changes) -> None:
    (path,) = folder.glob(f"{entry}__*.json")
    rec = json.loads(path.read_text())
    rec.update(changes)
    path.write_text(json.dumps(rec))


def test_layout_and_recorded_options(recorded: tuple[Path, Path], regress_track: str) -> None:
    folder, _ = recorded
    fp_id = folder.name
    key = "sample.challenge"                                       # the track's default data, the default protocol
    assert sorted(p.name for p in folder.iterdir()) == [f"base__{regress_track}__{key}__{fp_id}.json",
                                                        f"team01_a__{regress_track}__{key}__{fp_id}.json"]
    rec = json.loads((folder / f"team01_a__{regress_track}__{key}__{fp_id}.json").read_text())
    assert rec["options"]["track"] == regress_track and "device" not in rec["options"]


def test_passes_on_the_recorded_figures(recorded: tuple[Path, Path]) -> None:
    folder, roots = recorded
    report = regress(folder, baseline="base", device="cpu", entry_roots=[str(roots)])
    assert report.ok, [str(f) for f in report.regressions]
    metrics = {(f.entry, f.metric) for f in report.findings}
    assert {("team01_a", "params"), ("team01_a", "psnr_db"), ("team01_a", "runtime_ms / base"),
            ("base", "runtime_ms")} <= metrics
    assert not report.warnings


def test_fails_on_a_changed_count_and_a_psnr_drop(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    folder, roots = recorded
    copy = tmp_path / "copy" / folder.name
    shutil.copytree(folder, copy)
    rec = json.loads(next(copy.glob("team01_a__*.json")).read_text())
    edit(copy, "team01_a", params=rec["params"] + 1, psnr_db=rec["psnr_db"] + 0.5)
    edit(copy, "base", convs=2)
    report = regress(copy, baseline="base", device="cpu", entry_roots=[str(roots)])
    assert sorted((f.entry, f.metric) for f in report.regressions) == [("base", "convs"), ("team01_a", "params"),
                                                                       ("team01_a", "psnr_db")]
    psnr = next(f for f in report.regressions if f.metric == "psnr_db")
    assert "dropped by more than 0.01 dB" in psnr.note

    edit(copy, "team01_a", params=rec["params"], psnr_db=rec["psnr_db"] + 0.009)     # within the tolerance
    edit(copy, "base", convs=1)
    assert regress(copy, baseline="base", device="cpu", entry_roots=[str(roots)]).ok


def test_runtime_is_compared_relative_to_the_baseline(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    folder, roots = recorded
    copy = tmp_path / "copy" / folder.name
    shutil.copytree(folder, copy)
    # a machine twice as slow: both entries' times doubled -> same ratio -> no regression
    edit(copy, "team01_a", runtime_ms={"median": 10.0, "mean": 10.0, "timer": "robust"})
    edit(copy, "base", runtime_ms={"median": 5.0, "mean": 5.0, "timer": "robust"})
    assert regress(copy, baseline="base", device="cpu", entry_roots=[str(roots)]).ok
    # the entry 25 % slower relative to the baseline than recorded
    edit(copy, "team01_a", runtime_ms={"median": 8.0, "mean": 8.0, "timer": "robust"})
    report = regress(copy, baseline="base", device="cpu", entry_roots=[str(roots)])
    (finding,) = report.regressions
    assert finding.metric == "runtime_ms / base" and "slower by 25.0%" in finding.note
    # no baseline: the runtime cannot be compared, which fails loudly
    report = regress(copy, baseline="nobody", device="cpu", entry_roots=[str(roots)])
    assert {f.metric for f in report.regressions} == {"runtime_ms / nobody"}


def test_entry_gone_is_a_regression(recorded: tuple[Path, Path]) -> None:
    folder, roots = recorded
    shutil.rmtree(roots / "team01_a")
    report = regress(folder, baseline="base", device="cpu", entry_roots=[str(roots)])
    assert {(f.entry, f.metric) for f in report.regressions} == {("team01_a", "status")}
    assert "no entry named 'team01_a'" in report.regressions[0].note


def test_cli_exit_status_and_listing(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    folder, roots = recorded
    runner = CliRunner()
    args = ["--against", str(folder), "--baseline-entry", "base", "--device", "cpu", "--entries", str(roots),
            "--trust", str(roots)]              # the test's own track runs entries in process: reviewed code
    res = runner.invoke(regress_cli, args)
    assert res.exit_code == 0, res.output
    assert "no regression" in res.output
    rec = json.loads(next(folder.glob("team01_a__*.json")).read_text())
    edit(folder, "team01_a", params=rec["params"] - 1, macs_ntire2022=1)
    res = runner.invoke(regress_cli, args + ["--out", str(tmp_path / "fresh")])
    assert res.exit_code == 1
    assert "2 regression(s)" in res.output and "params" in res.output and "macs_ntire2022" in res.output
    assert len(list((tmp_path / "fresh").glob("*.json"))) == 2
    res = runner.invoke(regress_cli, args + ["--json"])
    assert json.loads(res.output)["ok"] is False
    res = runner.invoke(regress_cli, ["--against", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "no such folder" in res.output and "Traceback" not in res.output


def test_record_mode_rerecords_the_folder(recorded: tuple[Path, Path]) -> None:
    folder, roots = recorded
    edit(folder, "team01_a", params=1)
    res = CliRunner().invoke(regress_cli, ["--record", "--against", str(folder), "--device", "cpu",
                                           "--entries", str(roots), "--trust", str(roots)])
    assert res.exit_code == 0, res.output
    assert regress(folder, baseline="base", device="cpu", entry_roots=[str(roots)]).ok
    with pytest.raises(RegressError, match="needs --track"):
        record_reference(folder, entries=["base"])


def test_compare_and_figure_units() -> None:
    rec = {"entry": "a", "track": "t", "status": "ok", "params": 10, "psnr_db": 30.0, "psnr_y": 32.0}
    base = {"entry": "b", "track": "t", "status": "ok"}
    assert compare([rec, base], [dict(rec), dict(base)], baseline="b") and all(
        f.ok for f in compare([rec, base], [dict(rec), dict(base)], baseline="b"))
    worse = {**rec, "psnr_y": 31.9}
    assert [f.metric for f in compare([rec], [worse]) if not f.ok] == ["psnr_y"]
    failed = {**rec, "status": "failed", "error": "boom"}
    (finding,) = [f for f in compare([rec], [failed]) if not f.ok]
    assert finding.metric == "status" and "boom" in finding.note
    assert figure({"x": {"median": 2.0, "mean": 3.0, "timer": "ntire"}}, "x") == 3.0
    assert figure({"x": {"median": 2.0, "mean": 3.0, "timer": "robust"}}, "x") == 2.0
    assert figure({"x": True}, "x") is None and figure({"x": float("nan")}, "x") is None
