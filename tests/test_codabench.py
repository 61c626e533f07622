"""The Codabench scoring program run the way Codabench runs it, and the competition bundle checked against Codabench's
bundle format.

The program is run as the compute worker runs it (codalab/codabench ``compute_worker/compute_worker.py``: the
command of ``metadata.yaml`` with ``$program``, ``$input``, ``$output`` replaced, the upload in ``input/res``, the
reference data in ``input/ref``, the working folder the program's), with ``python3`` a fresh virtual environment's
interpreter holding numpy and Pillow only: a probe run the same way shows that torch, ntirekit and OpenCV cannot be
imported there.

The keys a bundle's ``competition.yaml`` must hold are those of Codabench's documentation (docs.codabench.org,
*Competition Bundle Structure* and *YAML Structure*: "Required") and of what its v2 unpacker reads without a default
(``src/apps/competitions/unpackers/v2.py``: ``pages``, ``tasks[].index``, a scoring program per task, ``terms``,
``image``, ``phases[].tasks``, ``leaderboards``; a page or terms file that is missing or empty is refused).
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import PIL
import pytest
import yaml
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.data.images import write_image
from ntirekit.data.video import write_png_folder
from ntirekit.pack.formats import render_readme
from ntirekit.score import score_results
from ntirekit.score.codabench.bundle import BundleOptions, make_bundle
from ntirekit.score.codabench.scoring_program import COMMAND
from ntirekit.score.codabench.yamlw import dump_yaml
from ntirekit.score.scoring import ScoringSettings, leaderboard_columns
from ntirekit.train.bundle import kit_imports

REQUIRED = {  # where -> keys Codabench requires there
    "competition": {"version", "title", "image", "terms", "pages", "phases", "tasks", "leaderboards"},
    "page": {"title", "file"},
    "phase": {"name", "start", "tasks"},
    "task": {"index", "name", "scoring_program"},
    "leaderboard": {"title", "key", "columns"},
    "column": {"title", "key", "index"},
}


# ------------------------------------------------------------------------------------------ a Codabench-like run

@pytest.fixture(scope="module")
def numpy_pillow_python(tmp_path_factory) -> Path:
    """``python3`` of a fresh virtual environment whose site-packages hold numpy and Pillow (links to the installed
    packages and their bundled libraries) and nothing else."""
    root = tmp_path_factory.mktemp("codabench-python")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    site = Path(subprocess.run([str(root / "bin" / "python3"), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    installed = Path(np.__file__).resolve().parents[1]
    for package in (Path(np.__file__).parent, Path(PIL.__file__).parent):
        (site / package.name).symlink_to(package.resolve())
    for libs in ("numpy.libs", "pillow.libs"):              # the shared libraries their wheels bundle
        if (installed / libs).is_dir():
            (site / libs).symlink_to(installed / libs)
    return root / "bin" / "python3"


def _clean_env(python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PATH"] = f"{python.parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return env


def run_like_codabench(python: Path, program: Path, ref: Path, res: Path, work: Path) -> subprocess.CompletedProcess:
    """Lay out ``input/ref``, ``input/res`` and ``output`` in ``work`` and run the program's metadata command."""
    layout = {"program": program, "input/ref": ref, "input/res": res}
    for name, source in layout.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).symlink_to(source.resolve(), target_is_directory=True)
    (work / "output").mkdir()
    command = yaml.safe_load((program / "metadata.yaml").read_text())["command"]
    for var, path in (("$program", work / "program"), ("$input", work / "input"), ("$output", work / "output")):
        command = command.replace(var, str(path))
    return subprocess.run(shlex.split(command), cwd=work / "program", env=_clean_env(python), capture_output=True,
                          text=True, timeout=300)


def test_only_numpy_and_pillow_can_be_imported_there(numpy_pillow_python, tmp_path):
    probe = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
             "('numpy', 'PIL', 'torch', 'ntirekit', 'cv2', 'scipy', 'skimage', 'yaml')}))")
    found = subprocess.run(["python3", "-c", probe], cwd=tmp_path, env=_clean_env(numpy_pillow_python),
                           capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == {"numpy": True, "PIL": True, "torch": False, "ntirekit": False, "cv2": False,
                                        "scipy": False, "skimage": False, "yaml": False}


def test_the_scoring_program_imports_numpy_pillow_and_the_standard_library_only(tmp_path):
    result = CliRunner().invoke(main, ["codabench", "scoring-program", str(tmp_path / "program")])
    assert result.exit_code == 0, result.output
    program = tmp_path / "program"
    assert sorted(p.name for p in program.iterdir()) == ["metadata.yaml", "score.py", "settings.json"]
    assert yaml.safe_load((program / "metadata.yaml").read_text())["command"] == COMMAND
    assert json.loads((program / "settings.json").read_text()) == {"track": "esr", "protocol": "challenge",
                                                                   "border": 4, "frame_step": 1}
    source = (program / "score.py").read_text()
    assert kit_imports(source) == []
    roots = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
             for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names}
    assert roots - set(sys.stdlib_module_names) == {"numpy", "PIL"}
    ast.parse(source, feature_version=(3, 8))              # the oldest Python it claims to run on


# ------------------------------------------------------------------------------------------ the bundle

def _unzip(path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(dest)
    return dest


def _check_competition_yaml(bundle: Path, program_keys: set[str]) -> dict:
    """Every required key of Codabench's format, every file it names present (and non-empty), the leaderboard
    columns exactly ``program_keys``."""
    doc = yaml.safe_load((bundle / "competition.yaml").read_text())
    assert REQUIRED["competition"] <= set(doc) and doc["version"] == 2
    assert doc["pages"] and doc["tasks"] and doc["phases"]       # the checks below cover something
    for name in (doc["image"], doc["terms"], *[p["file"] for p in doc["pages"]],
                 *[t["scoring_program"] for t in doc["tasks"]], *[t["reference_data"] for t in doc["tasks"]]):
        assert (bundle / name).is_file() and (bundle / name).stat().st_size > 0, name
    assert all(REQUIRED["page"] <= set(p) for p in doc["pages"])
    task_indexes = {t["index"] for t in doc["tasks"]}
    assert all(REQUIRED["task"] <= set(t) for t in doc["tasks"]) and len(task_indexes) == len(doc["tasks"])
    for phase in doc["phases"]:
        assert REQUIRED["phase"] <= set(phase) and set(phase["tasks"]) <= task_indexes
        assert isinstance(phase["start"], _dt.datetime)
    (board,) = doc["leaderboards"]
    assert REQUIRED["leaderboard"] <= set(board)
    assert all(REQUIRED["column"] <= set(c) for c in board["columns"])
    assert [c["index"] for c in board["columns"]] == list(range(len(board["columns"])))
    assert {c["key"] for c in board["columns"]} == program_keys
    return doc


def _set5_sr(tmp_path: Path, set5_dir: Path) -> tuple[Path, dict]:
    """The bicubic baseline's SR images of Set5 as ``eval --save-sr`` writes them, with a readme; and its record."""
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--data", str(set5_dir), "--entry", "bicubic",
                                       "--save-sr", str(tmp_path / "sr"), "--out", str(tmp_path / "results"),
                                       "--leaderboard", "none", "--quiet"])
    assert result.exit_code == 0, result.output
    res = tmp_path / "sr" / "bicubic"
    (res / "readme.txt").write_text(render_readme({"runtime_s": 0.004, "cpu": 1, "extra_data": 0,
                                                   "description": "bicubic"}, "esr-results"))
    (record,) = (tmp_path / "results").glob("bicubic__psnr__*.json")
    return res, json.loads(record.read_text())


def test_the_esr_bundle_runs_on_codabench_and_scores_as_eval(tmp_path, set5_dir, numpy_pillow_python):
    result = CliRunner().invoke(main, ["codabench", "bundle", "--protocol", "ntire2026", "--ref", str(set5_dir),
                                       "--out", str(tmp_path / "bundle.zip"), "--start", "2026-01-15",
                                       "--end", "2026-03-01 12:00"])
    assert result.exit_code == 0, result.output
    bundle = _unzip(tmp_path / "bundle.zip", tmp_path / "bundle")
    settings = ScoringSettings("esr", "challenge", border=4)
    doc = _check_competition_yaml(bundle, {c.key for c in leaderboard_columns(settings)})
    phase = doc["phases"][0]
    assert phase["start"] == _dt.datetime(2026, 1, 15) and phase["end"] == _dt.datetime(2026, 3, 1, 12)
    assert doc["docker_image"] == "codalab/codalab-legacy:py312" and doc["enable_detailed_results"] is True
    evaluation = (bundle / "pages" / "evaluation.md").read_text()
    assert "26.90 dB" in evaluation and "26.99 dB" in evaluation        # the protocol's gate, as text
    assert "0.8·exp(2·runtime_ms/base)" in evaluation

    program = _unzip(bundle / "scoring_program.zip", tmp_path / "program")
    ref = _unzip(bundle / "reference_data.zip", tmp_path / "ref")
    res, record = _set5_sr(tmp_path, set5_dir)
    run = run_like_codabench(numpy_pillow_python, program, ref, res, tmp_path / "run")
    assert run.returncode == 0, run.stderr
    scores = json.loads((tmp_path / "run" / "output" / "scores.json").read_text())
    assert set(scores) == {c["key"] for c in doc["leaderboards"][0]["columns"]}
    assert abs(scores["psnr"] - record["psnr_db"]) <= 1e-9                  # eval's figure
    assert scores["psnr"] == score_results(res, set5_dir).scores.psnr_db   # the kit's, bit for bit
    assert scores["psnr"] == score_results(res, ref).scores.psnr_db        # the kit on the bundle's reference folder
    assert (scores["runtime"], scores["cpu"], scores["extra_data"]) == (0.004, 1, 0)
    details = (tmp_path / "run" / "output" / "detailed_results.html").read_text()
    for image in record["images"]:
        assert f"<td>{image['name']}</td><td>{image['psnr_db']:.4f}</td>" in details


def test_a_bad_upload_fails_on_codabench_with_one_line_per_problem(tmp_path, set5_dir, numpy_pillow_python):
    from helpers.hostile_pngs import black_png

    make_bundle("ntire2024", set5_dir, tmp_path / "bundle.zip", options=BundleOptions(_dt.datetime(2026, 1, 1)))
    bundle = _unzip(tmp_path / "bundle.zip", tmp_path / "bundle")
    program = _unzip(bundle / "scoring_program.zip", tmp_path / "program")
    ref = _unzip(bundle / "reference_data.zip", tmp_path / "ref")
    res, _ = _set5_sr(tmp_path, set5_dir)
    black_png(res / "baby.png", 20000, 20000)
    (res / "bird.png").rename(res / "birdx4.png")
    (res / "<script>.png").write_bytes(b"no png")
    run = run_like_codabench(numpy_pillow_python, program, ref, res, tmp_path / "run")
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    assert run.stderr.splitlines() == [
        "[misnamed] birdx4.png: carries the LR suffix; SR images are named like the HR image: expected bird.png",
        "[extra-file] <script>.png: not an image of the reference set",
        "[wrong-size] baby.png: is 20000x20000, expected 512x512"]
    assert not (tmp_path / "run" / "output" / "scores.json").exists()
    details = (tmp_path / "run" / "output" / "detailed_results.html").read_text()
    assert "&lt;script&gt;.png" in details and "<script>" not in details


def _vqe_data(root: Path) -> tuple[Path, Path]:
    """Two clean clips (21 and 12 frames) as a folder of clean clips, and an upload of every 10th frame (each clean
    frame plus a known offset)."""
    rng = np.random.default_rng(5)
    clean, up = root / "clean", root / "up"
    for name, n in (("001", 21), ("002", 12)):
        frames = [rng.integers(20, 230, (36, 44, 3), dtype=np.uint8) for _ in range(n)]
        write_png_folder(frames, clean / name)
        for k in range(10, n + 1, 10):
            write_image(up / name / f"{k:03d}.png", frames[k - 1] + np.uint8(k // 10 + int(name)))
    (up / "readme.txt").write_text(render_readme({"runtime_s": 1.5, "cpu": 0, "extra_data": 1, "description": "x"},
                                                 "vqe-results"))
    return clean, up


def test_the_vqe_bundle_scores_every_10th_frame_per_video_then_over_videos(tmp_path, numpy_pillow_python):
    import math

    clean, up = _vqe_data(tmp_path)
    make_bundle("ntire2022-vqe-validation", clean, tmp_path / "vqe.zip",
                options=BundleOptions(_dt.datetime(2022, 1, 1)))
    bundle = _unzip(tmp_path / "vqe.zip", tmp_path / "bundle")
    settings = ScoringSettings("vqe", "challenge", border=0, frame_step=10)
    _check_competition_yaml(bundle, {c.key for c in leaderboard_columns(settings)})
    ref = _unzip(bundle / "reference_data.zip", tmp_path / "ref")
    assert sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*.png")) == ["001/010.png", "001/020.png",
                                                                                  "002/010.png"]
    program = _unzip(bundle / "scoring_program.zip", tmp_path / "program")
    run = run_like_codabench(numpy_pillow_python, program, ref, up, tmp_path / "run")
    assert run.returncode == 0, run.stderr
    scores = json.loads((tmp_path / "run" / "output" / "scores.json").read_text())
    # offsets: video 001 frames 10, 20 -> +2, +3; video 002 frame 10 -> +3 (no clipping: pixels are 20..229)
    psnr = [20 * math.log10(255 / d) for d in (2, 3, 3)]
    expected = ((psnr[0] + psnr[1]) / 2 + psnr[2]) / 2              # per video, then over videos
    assert scores == {"psnr": pytest.approx(expected, abs=1e-12), "runtime": 1.5, "cpu": 0, "extra_data": 1}
    assert scores["psnr"] == score_results(up, ref).scores.psnr_db   # the kit on the bundle's reference folder


def test_yaml_writer_keeps_every_value_its_type():
    doc = {"title": "NTIRE: \"x\" é", "names": ["0801", "yes", "1e3", "null"], "n": 3, "f": 0.5, "on": True,
           "when": _dt.datetime(2026, 2, 3, 4, 5, 6), "nested": [{"a": {"b": ["c"]}, "d": 1}], "9 lives": "x"}
    assert yaml.safe_load(dump_yaml(doc, "comment\nlines")) == doc
