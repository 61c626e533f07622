"""The wheel works on its own: built from the checkout, installed into a fresh virtual environment, run from an
empty folder. The fresh environment reuses this environment's third-party packages (torch, ...) through a ``.pth``
file instead of downloading them, so the test costs seconds; the kit itself comes only from the wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built from a copy of the checkout; returns its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ntirekit", src / "ntirekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], cwd=tmp)
    wheel = next(dist.glob("ntirekit-*.whl"))
    env = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (site / "reuse-host-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp)
    return env / "bin"


@pytest.mark.slow
def test_the_wheel_ships_every_baseline(installed: Path, tmp_path: Path) -> None:
    where = _run([str(installed / "python"), "-c", "import ntirekit; print(ntirekit.__file__)"], cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(installed.parent), where
    listed = _run([str(installed / "ntirekit"), "list"], cwd=tmp_path)
    names = {line.split()[0] for line in listed.splitlines()[2:] if line.strip()}
    baselines = {p.parent.name for p in (REPO / "ntirekit" / "baselines").glob("*/entry.toml")}
    assert len(baselines) == 22 and names == baselines


@pytest.mark.slow
def test_the_wheel_evaluates_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    _run([str(installed / "ntirekit"), "eval", "--track", "complexity", "--entry", "span", "--input-shape",
          "1,3,64,64", "--device", "cpu", "--quiet", "--leaderboard", "none", "--out", "results"], cwd=tmp_path)
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("span__complexity__*.json")]
    assert record["status"] == "ok"
    with open(REPO / "ntirekit" / "baselines" / "span" / "entry.toml", "rb") as f:
        published = tomllib.load(f)["published"]
    assert record["params"] == published["params"]          # SPAN's published count, NTIRE 2024 ESR winner
