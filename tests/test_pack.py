"""``ntirekit pack``: the three formats, validation before packing, measured readme fields, and the round trip
pack -> check -> unpack -> evaluate isolated."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ntirekit.cli.pack_cmd import pack as pack_cli
from ntirekit.core.registry import discover, iter_entry_folders
from ntirekit.core.spec import REPO_ROOT
from ntirekit.core.weights import sha256_of
from ntirekit.core.trust import UNTRUSTED_MARKER, declared_roots, is_untrusted
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.jail.bwrap import bwrap_problem
from ntirekit.pack import ACCEPTED, check_zip, pack, parse_readme, unpack
from ntirekit.pack.formats import README
from tests.helpers.entries import write_entry
from tests.helpers.sandbox import EXPECTED_SANDBOX
from tests.test_check import TEAM, png_bytes, team_entry, tiny_state, zip_of

README_TEXT = ("runtime per image [s] : 0.5\nCPU[1] / GPU[0] : 1\nExtra Data [1] / No Extra Data [0] : 0\n"
               "Other description : typed by hand\n")


def write_png(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def make_dataset(root: Path, names=("0001", "0002"), hr: int = 32, scale: int = 4) -> Path:
    """Generic pairs layout: HR/<name>.png + LR_bicubic/X4/<name>x4.png."""
    for i, name in enumerate(names):
        write_png(root / "HR" / f"{name}.png", hr, hr + 8, seed=i)
        write_png(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", hr // scale, (hr + 8) // scale, seed=i)
    return root


def make_results(root: Path, names=("0001", "0002"), size=(32, 40), readme: str | None = README_TEXT) -> Path:
    for i, name in enumerate(names):
        write_png(root / f"{name}.png", *size, seed=i)
    if readme is not None:
        (root / README).write_text(readme)
    return root


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return sorted(zf.namelist())


# ---------------------------------------------------------------------------------------------------------- code

def test_entry_folder_pack_writes_manifest_and_passes_check(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".DS_Store").write_bytes(b"\0")
    outcome = pack(folder, out=tmp_path / "out" / "team.zip")
    assert outcome.zip_path == tmp_path / "out" / "team.zip", outcome.report.render()
    assert zip_names(outcome.zip_path) == ["MANIFEST.json", "entry.toml", "model.py", "tiny.pth"]
    with zipfile.ZipFile(outcome.zip_path) as zf:
        manifest = json.loads(zf.read("MANIFEST.json"))
        assert all(info.external_attr >> 16 == 0o100644 for info in zf.infolist())
    assert manifest["format"] == "esr-code" and manifest["entry"] == TEAM and manifest["kit_version"]
    files = {f["path"]: f for f in manifest["files"]}
    assert files["tiny.pth"]["sha256"] == sha256_of(folder / "tiny.pth")
    assert files["tiny.pth"]["size"] == (folder / "tiny.pth").stat().st_size
    assert outcome.report.info["load_sandbox"] == EXPECTED_SANDBOX      # the probe ran the code in the jail
    assert any(w.code == "missing-factsheet" for w in outcome.report.warnings)   # flat layout: a warning only
    assert check_zip(outcome.zip_path).verdict == ACCEPTED


def test_weights_resolved_outside_the_folder_are_packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = team_entry(tmp_path / "src")
    store = tmp_path / "store"
    store.mkdir()
    (folder / "tiny.pth").rename(store / "tiny.pth")
    monkeypatch.setenv("NTIREKIT_WEIGHTS", str(store))
    outcome = pack(folder, out=tmp_path / "a.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert "tiny.pth" in zip_names(outcome.zip_path)

    absolute = write_entry(tmp_path / "src2", TEAM, extra_toml=f'\n[weights]\nfile = "{store / "tiny.pth"}"\n')
    outcome = pack(absolute, out=tmp_path / "b.zip")            # entry paths stay inside the folder, as in zips
    assert outcome.zip_path is None and "inside the entry's folder" in outcome.report.render()


def test_pack_refuses_weights_that_do_not_fit_and_bad_names(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    torch.save({"conv.weight": torch.zeros(12, 3, 3, 3), "conv.bias": torch.zeros(12)}, folder / "tiny.pth")
    outcome = pack(folder, out=tmp_path / "x.zip")
    assert outcome.zip_path is None and not (tmp_path / "x.zip").exists()
    assert outcome.report.codes() == ["load-failed"]
    assert "shape" in outcome.report.problems[0].message

    folder = team_entry(tmp_path / "src2", name="tiny")
    outcome = pack(folder, out=tmp_path / "y.zip")
    assert outcome.zip_path is None and "wrong-name" in outcome.report.codes()

    folder = write_entry(tmp_path / "src3", TEAM)             # no [weights] at all
    assert "missing-weights" in pack(folder, out=tmp_path / "z.zip").report.codes()


def _legacy_folder(root: Path, *, factsheet: bool = True) -> Path:
    from tests.helpers.entries import TINY_MODEL

    folder = root / "team07_tiny"
    (folder / "models").mkdir(parents=True)
    (folder / "model_zoo").mkdir()
    (folder / "models" / "team07_tiny.py").write_text(TINY_MODEL)
    torch.save(tiny_state(), folder / "model_zoo" / "team07_tiny.pth")
    (folder / "entry.toml").write_text('name = "team07_tiny"\ntrack = "esr"\ntask = "sr"\nscale = 4\n'
                                       'data_range = 255.0\n\n[model]\nfactory = "models/team07_tiny.py:TinySR"\n\n'
                                       '[weights]\nfile = "model_zoo/team07_tiny.pth"\n')
    if factsheet:
        (folder / "factsheet").mkdir()
        (folder / "factsheet" / "team07_factsheet.pdf").write_bytes(b"%PDF-1.5\n%%EOF\n")
        zip_of(folder / "factsheet" / "team07_factsheet_src.zip", {"main.tex": "\\documentclass{article}"})
    return folder


def _with_factsheet(folder: Path) -> Path:
    (folder / "factsheet").mkdir()
    (folder / "factsheet" / "team07_factsheet.pdf").write_bytes(b"%PDF-1.5\n%%EOF\n")
    zip_of(folder / "factsheet" / "team07_factsheet_src.zip", {"main.tex": "\\documentclass{article}"})
    return folder


@pytest.mark.parametrize("layout", ["entry folder", "NTIRE layout"])
def test_one_factsheet_rule_for_both_layouts(tmp_path: Path, layout: str) -> None:
    """Without a factsheet: packed with a warning while developing, rejected with final=True (pack and check)."""
    def folder(name: str, factsheet: bool) -> Path:
        if layout == "NTIRE layout":
            return _legacy_folder(tmp_path / name, factsheet=factsheet)
        made = team_entry(tmp_path / name)
        return _with_factsheet(made) if factsheet else made

    bare = pack(folder("bare", False), out=tmp_path / "bare.zip")
    assert bare.zip_path is not None, bare.report.render()
    assert [w.code for w in bare.report.warnings].count("missing-factsheet") >= 2
    assert "--final" in next(w.message for w in bare.report.warnings if w.code == "missing-factsheet")
    assert check_zip(bare.zip_path).verdict == ACCEPTED
    final = check_zip(bare.zip_path, final=True)
    assert final.verdict != ACCEPTED and final.codes() == ["missing-factsheet", "missing-factsheet"]
    refused = pack(folder("bare_final", False), out=tmp_path / "bare_final.zip", final=True)
    assert refused.zip_path is None and refused.report.codes() == ["missing-factsheet", "missing-factsheet"]
    assert not (tmp_path / "bare_final.zip").exists()

    full = pack(folder("full", True), out=tmp_path / "full.zip", final=True)
    assert full.zip_path is not None, full.report.render()
    assert "missing-factsheet" not in [w.code for w in full.report.warnings]
    assert check_zip(full.zip_path, final=True).verdict == ACCEPTED
    if layout == "NTIRE layout":
        assert "models/team07_tiny.py" in zip_names(full.zip_path)


def test_pack_never_overwrites_a_zip_without_force(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    out = tmp_path / "team.zip"
    out.write_bytes(b"an earlier zip")
    outcome = pack(folder, out=out)
    assert outcome.zip_path is None and outcome.report.codes() == ["zip-exists"]
    assert "--force" in outcome.report.problems[0].message and out.read_bytes() == b"an earlier zip"
    res = CliRunner().invoke(pack_cli, [str(folder), "--out", str(out)])
    assert res.exit_code == 1 and "zip-exists" in res.output and out.read_bytes() == b"an earlier zip"
    res = CliRunner().invoke(pack_cli, [str(folder), "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert check_zip(out).verdict == ACCEPTED and "model.py" in zip_names(out)
    # a forced pack that fails its checks leaves the zip that was there
    before = out.read_bytes()
    (folder / "tiny.pth").write_bytes(b"not a checkpoint")
    assert pack(folder, out=out, force=True).zip_path is None and out.read_bytes() == before


@pytest.mark.slow
def test_code_that_imports_the_kit_is_a_warning(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    model = folder / "model.py"
    model.write_text("from ntirekit.nn.blocks import conv_layer  # noqa: F401\n" + model.read_text())
    outcome = pack(folder, out=tmp_path / "kit.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    (warning,) = [w for w in outcome.report.warnings if w.code == "imports-kit"]
    assert warning.path == "model.py" and "ntirekit.nn.blocks" in warning.message and "NTIRE harness" in warning.message
    report = check_zip(outcome.zip_path, load=True, timeout_s=120)
    assert report.verdict == ACCEPTED and "imports-kit" in [w.code for w in report.warnings]
    clean = pack(team_entry(tmp_path / "clean"), out=tmp_path / "clean.zip").report
    assert "imports-kit" not in [w.code for w in clean.warnings]


# ---------------------------------------------------------------------------------------------------------- results

def test_esr_results_against_the_dataset(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data")
    outcome = pack(make_results(tmp_path / "sr"), "esr-results", tmp_path / "sr.zip", data=data)
    assert outcome.zip_path is not None, outcome.report.render()
    assert zip_names(outcome.zip_path) == ["0001.png", "0002.png", "MANIFEST.json", "readme.txt"]
    assert any(w.code == "typed-readme" for w in outcome.report.warnings)
    assert check_zip(outcome.zip_path, data=data).verdict == ACCEPTED

    bad = make_results(tmp_path / "bad", names=("0001x4", "0003"), size=(32, 40))
    write_png(bad / "0002.png", 16, 20)
    report = pack(bad, "esr-results", tmp_path / "bad.zip", data=data).report
    assert {"wrong-name", "missing-output", "extra-output", "wrong-size"} <= set(report.codes()), report.render()
    assert not (tmp_path / "bad.zip").exists()
    assert any("0002.png is 20x16, expected 40x32" in p.message for p in report.problems)


def test_readme_is_measured_from_a_result_json(tmp_path: Path) -> None:
    result = tmp_path / "rec.json"
    result.write_text(json.dumps({"entry": "x", "track": "overall", "status": "ok", "device": {"kind": "cuda"},
                                  "runtime_ms": {"median": 12.5, "mean": 14.0, "timer": "robust"}}))
    src = make_results(tmp_path / "sr", readme=None)
    outcome = pack(src, "esr-results", tmp_path / "sr.zip", result=result, extra_data=1, description="measured")
    assert outcome.zip_path is not None, outcome.report.render()
    with zipfile.ZipFile(outcome.zip_path) as zf:
        values, problems = parse_readme(zf.read(README).decode(), "esr-results")
    assert problems == [] and values == {"runtime_s": 0.0125, "cpu": 0, "extra_data": 1, "description": "measured"}
    assert not outcome.report.warnings

    src = make_results(tmp_path / "sr2", readme=None)
    report = pack(src, "esr-results", tmp_path / "sr2.zip").report          # nothing typed, nothing measured
    assert report.codes() == ["missing-readme"]


def test_readme_is_measured_by_timing_an_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    team_entry(tmp_path / "entries")
    monkeypatch.setenv("NTIREKIT_ENTRIES", str(tmp_path / "entries"))
    data = make_dataset(tmp_path / "data")
    src = make_results(tmp_path / "sr", readme="Extra Data [1] / No Extra Data [0] : 0\nOther description : x\n")
    outcome = pack(src, "esr-results", tmp_path / "sr.zip", data=data, entry=TEAM, device="cpu")
    assert outcome.zip_path is not None, outcome.report.render()
    readme = outcome.report.info["readme"]
    assert readme["cpu"] == 1 and 0 < readme["runtime_s"] < 5
    assert outcome.report.info["timed"]["images"] == 2


def test_vqe_results_every_10th_frame_against_clips(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for i in range(25):
        write_png(clips / "001" / f"{i:08d}.png", 16, 24, seed=i)
    readme = README_TEXT.replace("per image", "per frame")
    src = tmp_path / "vqe"
    for n in (10, 20):
        write_png(src / "001" / f"{n:03d}.png", 16, 24)
    (src / README).write_text(readme)
    outcome = pack(src, "auto", tmp_path / "vqe.zip", data=clips)
    assert outcome.zip_path is not None and outcome.report.format == "vqe-results", outcome.report.render()

    write_png(src / "001" / "030.png", 16, 24)                              # beyond the 25-frame input
    write_png(src / "002" / "001.png", 8, 8)                                  # a video the data does not have
    report = pack(src, "auto", tmp_path / "vqe2.zip", data=clips).report
    assert {"frame-count", "extra-output"} <= set(report.codes()), report.render()

    full = tmp_path / "full"
    for n in [1, 2, 4]:
        write_png(full / "001" / f"f{n:03d}.png", 16, 24)
    (full / README).write_text(readme)
    report = pack(full, "vqe-results", tmp_path / "full.zip").report
    assert report.codes() == ["missing-frames"] and "3" in report.problems[0].message


def test_cli_pack(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    out = tmp_path / "cli.zip"
    res = CliRunner().invoke(pack_cli, [str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("ACCEPTED") and f"wrote {out}" in res.output
    res = CliRunner().invoke(pack_cli, [str(team_entry(tmp_path / "bad", name="nope")), "--out", str(tmp_path / "n.zip")])
    assert res.exit_code == 1 and "wrong-name" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------------------------------------------------- round trip

@pytest.mark.slow
def test_round_trip_pack_check_unpack_evaluate_isolated(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data")
    outcome = pack(team_entry(tmp_path / "src"), out=tmp_path / f"{TEAM}.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert check_zip(outcome.zip_path).verdict == ACCEPTED
    report, root = unpack(outcome.zip_path, tmp_path / "unpacked")
    assert report.ok and root is not None and (tmp_path / "unpacked" / UNTRUSTED_MARKER).is_file()
    entry = discover([root], include_defaults=False)[TEAM]
    assert is_untrusted(entry.folder)
    options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False)
    isolated = run_track([entry], options, out_dir=tmp_path / "out")[0]        # untrusted: jailed by default
    assert isolated["status"] == "ok", isolated.get("error")
    assert isolated["sandbox"] == EXPECTED_SANDBOX and isolated["graph"]["checked_inputs"] >= 3   # + random
    still = run_track([entry], options, isolate=False)[0]             # untrusted: jailed whatever isolate says
    assert still["status"] == "ok" and still["sandbox"] == EXPECTED_SANDBOX
    with declared_roots(trusted=[root]):
        local = run_track([entry], options, isolate=False)[0]
    assert "sandbox" not in local
    assert isolated["psnr_db"] == pytest.approx(local["psnr_db"], abs=1e-9)
    assert [i["name"] for i in isolated["images"]] == ["0001", "0002"]
    assert len(list((tmp_path / "out").glob(f"{TEAM}__psnr__*.json"))) == 1


def test_unpack_refuses_a_rejected_zip(tmp_path: Path) -> None:
    bad = zip_of(tmp_path / "bad.zip", {"../x.txt": "x", "0001.png": png_bytes()})
    report, root = unpack(bad, tmp_path / "dest")
    assert root is None and "path-traversal" in report.codes()
    assert [p.name for p in (tmp_path / "dest").iterdir()] == [UNTRUSTED_MARKER]


@pytest.mark.slow
def test_check_load_builds_the_model_in_a_child_process(tmp_path: Path) -> None:
    good = pack(team_entry(tmp_path / "src"), out=tmp_path / "good.zip").zip_path
    assert good is not None
    report = check_zip(good, load=True, timeout_s=120)
    assert report.verdict == ACCEPTED and report.info["load_sandbox"] == EXPECTED_SANDBOX, report.render()

    folder = team_entry(tmp_path / "src2")
    (folder / "model.py").write_text((folder / "model.py").read_text().replace("PixelShuffle(scale)",
                                                                               "PixelShuffle(scale // 2)"))
    members = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    report = check_zip(zip_of(tmp_path / "wrong.zip", members), load=True, timeout_s=120)
    assert report.codes() == ["load-failed"], report.render()


@pytest.mark.slow
@pytest.mark.skipif(bwrap_problem() is not None, reason=f"no bwrap sandbox here: {bwrap_problem()}")
def test_check_load_runs_in_the_sandbox(tmp_path: Path) -> None:
    """A zip whose model.py writes outside on import: --load builds it under bwrap and the write goes nowhere."""
    folder = team_entry(tmp_path / "src")
    outside = tmp_path / "written-by-the-zip.txt"
    (folder / "model.py").write_text(f"import pathlib\ntry:\n    pathlib.Path({str(outside)!r}).write_text('x')\n"
                                     f"except OSError:\n    pass\n" + (folder / "model.py").read_text())
    members = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    report = check_zip(zip_of(tmp_path / "hostile.zip", members), load=True, timeout_s=120)
    assert report.verdict == ACCEPTED and report.info["load_sandbox"] == "bwrap", report.render()
    assert not outside.exists()


# ---------------------------------------------------------------------------------------------------------- examples

EXAMPLES = sorted(iter_entry_folders(REPO_ROOT / "submissions")) if (REPO_ROOT / "submissions").is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("folder", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_worked_examples_in_submissions_pack_and_check(tmp_path: Path, folder: Path) -> None:
    """Each example packs and is accepted. Its trained weights are not in the repository: where they are not at hand,
    a copy of the folder gets seeded random weights of the same architecture (the layout is what is checked)."""
    (only,) = discover([folder], include_defaults=False).values()
    if only.spec.weights is not None and not only.has_weights():
        folder = shutil.copytree(folder, tmp_path / folder.name)
        torch.manual_seed(0)
        with declared_roots(trusted=[REPO_ROOT / "submissions"]):      # the kit's own examples: reviewed code
            torch.save(only.load(pretrained=False).state_dict(), folder / only.spec.weights.file)
        spec = folder / "entry.toml"
        spec.write_text("\n".join(l for l in spec.read_text().splitlines() if not l.startswith("sha256")) + "\n")
    outcome = pack(folder, out=tmp_path / "example.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert check_zip(outcome.zip_path).verdict == ACCEPTED
