"""Where readme.txt's runtime comes from: never a CPU quick run's figure without --allow-quick (and then said);
a readme that ``eval --save-frames`` wrote counts as measured, not typed; zips get the user's file mode."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.cli.eval_cmd import QUICK_CROP, QUICK_IMAGES, save_vqe_readme
from ntirekit.data.images import write_image
from ntirekit.pack import pack, parse_readme
from ntirekit.pack.formats import README


def _quick_record(path: Path) -> Path:
    """A record as the CPU quick run of ``eval --track overall`` writes it (the fields pack reads)."""
    path.write_text(json.dumps({
        "entry": "rlfn_ntire", "track": "overall", "status": "ok", "device": {"kind": "cpu"}, "quick": True,
        "runtime_ms": {"median": 1894.92, "mean": 1900.0, "timer": "robust"},
        "options": {"track": "overall", "data": "div2k-like", "extra": {"images": QUICK_IMAGES, "crop": QUICK_CROP}}}))
    return path


def _sr_folder(root: Path) -> Path:
    for i, name in enumerate(("0001", "0002")):
        write_image(root / f"{name}.png", np.full((32, 40, 3), i, np.uint8))
    return root


def test_a_quick_run_figure_needs_allow_quick_and_says_so(tmp_path: Path) -> None:
    record = _quick_record(tmp_path / "quick.json")
    outcome = pack(_sr_folder(tmp_path / "sr"), "esr-results", tmp_path / "sr.zip", result=record, extra_data=0,
                   description="RLFN")
    assert outcome.zip_path is None and "quick-result" in outcome.report.codes(), outcome.report.render()
    assert "CPU quick run" in outcome.report.render() and "--allow-quick" in outcome.report.render()
    assert not (tmp_path / "sr.zip").exists()

    outcome = pack(_sr_folder(tmp_path / "sr2"), "esr-results", tmp_path / "sr2.zip", result=record, extra_data=0,
                   description="RLFN", allow_quick=True)
    assert outcome.zip_path is not None, outcome.report.render()
    assert any(w.code == "quick-result" for w in outcome.report.warnings)
    with zipfile.ZipFile(outcome.zip_path) as zf:
        values, problems = parse_readme(zf.read(README).decode(), "esr-results")
    assert problems == [] and values["runtime_s"] == 1.89492
    assert values["description"].startswith("RLFN [runtime from a CPU quick run")
    assert f"centre crops of at most {QUICK_CROP}x{QUICK_CROP}" in values["description"]

    # through the command line: refused with exit status 1, accepted with --allow-quick
    cli = CliRunner().invoke(main, ["pack", str(_sr_folder(tmp_path / "sr3")), "--format", "esr-results",
                                    "--result", str(record), "--extra-data", "0", "--out", str(tmp_path / "c.zip")])
    assert cli.exit_code == 1 and "quick" in cli.output
    cli = CliRunner().invoke(main, ["pack", str(tmp_path / "sr3"), "--format", "esr-results", "--result",
                                    str(record), "--extra-data", "0", "--allow-quick", "--out",
                                    str(tmp_path / "c.zip")])
    assert cli.exit_code == 0, cli.output


def test_a_readme_written_by_eval_save_frames_is_measured_not_typed(tmp_path: Path) -> None:
    up = tmp_path / "up" / "entry"
    for n in (10, 20):
        write_image(up / "001" / f"{n:03d}.png", np.zeros((16, 24, 3), np.uint8))
    rec = {"entry": "entry", "runtime_ms_per_frame": 812.5, "device": {"kind": "cpu"}}
    save_vqe_readme(up, rec, "a model", 0, "results/entry__vqe__x.json")
    outcome = pack(up, "vqe-results", tmp_path / "vqe.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert not [w for w in outcome.report.warnings if w.code == "typed-readme"], outcome.report.render()
    assert "measured by ntirekit eval" in outcome.report.info["readme_source"]
    with zipfile.ZipFile(outcome.zip_path) as zf:
        assert ".ntirekit-readme.json" not in zf.namelist()        # the provenance note is never packed

    # edited by hand afterwards: typed again
    text = (up / README).read_text().replace("0.8125", "0.1")
    (up / README).write_text(text)
    outcome = pack(up, "vqe-results", tmp_path / "vqe2.zip")
    assert any(w.code == "typed-readme" for w in outcome.report.warnings), outcome.report.render()


def test_zips_get_the_users_file_mode(tmp_path: Path) -> None:
    record = _quick_record(tmp_path / "quick.json")
    old = os.umask(0o027)                    # not the common 022: a fixed 0o644 would not pass
    try:
        outcome = pack(_sr_folder(tmp_path / "sr"), "esr-results", tmp_path / "sr.zip", result=record,
                       extra_data=0, description="x", allow_quick=True)
    finally:
        os.umask(old)
    assert outcome.zip_path is not None
    assert stat.S_IMODE(outcome.zip_path.stat().st_mode) == 0o640
