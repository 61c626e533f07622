"""Self-contained model files: kit code written into an entry's model.py, which then runs without ``ntirekit``.

The decisive check runs the rewritten files in a Python started with ``-I -S`` whose ``sys.path`` holds the
site-packages directory (torch, numpy) but not the kit: ``import ntirekit`` fails there, and the model must build,
load its weights strictly and give exactly the output of the kit's own network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch

from ntirekit.train.bundle import BundleError, kit_imports, make_self_contained, self_contained_source
from ntirekit.train.derive import write_entry_folder
from ntirekit.core.registry import discover
from ntirekit.core.spec import REPO_ROOT
from ntirekit.pack import ACCEPTED, check_zip, pack

KIT_ROOT = str(Path(__file__).resolve().parents[1])

#: the child: sys.path without the kit, proof that ntirekit cannot be imported, then each job's model run
_CHILD = """
import importlib.util, json, sys
sys.path[:] = [p for p in sys.path if not p.startswith({kit!r})] + [{site!r}]
try:
    import ntirekit
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("ntirekit is importable: " + ntirekit.__file__)
import torch
for i, job in enumerate(json.loads(sys.argv[1])):
    spec = importlib.util.spec_from_file_location(f"m{{i}}", job["file"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model = getattr(module, job["factory"])(**job["kwargs"])
    model.load_state_dict(torch.load(job["weights"], weights_only=True), strict=True)
    with torch.no_grad():
        torch.save(model.eval()(torch.load(job["input"])), job["output"])
"""


def run_without_kit(jobs: list[dict]) -> None:
    code = _CHILD.format(kit=KIT_ROOT, site=sysconfig.get_paths()["purelib"])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, json.dumps(jobs)], capture_output=True, text=True,
                          timeout=600, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]


ESR_BASELINES = ["imdn", "imdn_baseline", "rfdn", "rlfn", "rlfn_ntire", "efdn", "span", "ecbsr", "rlfn_rep"]


@pytest.mark.slow
def test_every_esr_baseline_model_runs_without_the_kit_once_rewritten(tmp_path: Path) -> None:
    entries = discover(include_defaults=True)
    jobs, expected = [], {}
    for name in ESR_BASELINES:
        entry = entries[name]
        module, factory = entry.spec.factory.split(":")
        assert module.startswith("ntirekit.models."), f"{name}: a baseline names a kit network"
        source = f"from {module} import {factory}\n"      # what a derived entry's model.py holds before bundling
        rewritten = self_contained_source(source, "model.py")
        assert kit_imports(rewritten) == []
        (tmp_path / f"{name}.py").write_text(rewritten, encoding="utf-8")
        torch.manual_seed(0)
        model = entry.build().eval()
        torch.save(model.state_dict(), tmp_path / f"{name}.pth")
        x = torch.rand(1, 3, 19, 23, generator=torch.Generator().manual_seed(1)) * entry.spec.data_range
        torch.save(x, tmp_path / f"{name}.x.pt")
        with torch.no_grad():
            expected[name] = model(x)
        jobs.append({"file": str(tmp_path / f"{name}.py"), "factory": factory, "kwargs": dict(entry.spec.kwargs),
                     "weights": str(tmp_path / f"{name}.pth"), "input": str(tmp_path / f"{name}.x.pt"),
                     "output": str(tmp_path / f"{name}.y.pt")})
    run_without_kit(jobs)
    for name in ESR_BASELINES:
        assert torch.equal(torch.load(tmp_path / f"{name}.y.pt"), expected[name]), name


@pytest.mark.slow
def test_a_derived_entry_packs_self_contained_and_imports_without_the_kit(tmp_path: Path) -> None:
    source = discover()["rlfn"]
    torch.manual_seed(0)
    state = source.build(feature_channels=20, mid_channels=24).state_dict()
    derived = write_entry_folder(source, tmp_path / "team42_small", state, name="team42_small",
                                 description="a small RLFN", kwargs={"feature_channels": 20, "mid_channels": 24})
    assert kit_imports((derived.folder / "model.py").read_text(encoding="utf-8")) == []
    outcome = pack(derived.folder, out=tmp_path / "team42_small.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert "imports-kit" not in [w.code for w in outcome.report.warnings]
    assert check_zip(outcome.zip_path).verdict == ACCEPTED
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(outcome.zip_path) as zf:
        zf.extractall(unzipped)
    x = torch.rand(1, 3, 17, 21, generator=torch.Generator().manual_seed(2)) * 255
    torch.save(x, tmp_path / "x.pt")
    run_without_kit([{"file": str(unzipped / "model.py"), "factory": "RLFN",
                      "kwargs": {"feature_channels": 20, "mid_channels": 24},
                      "weights": str(unzipped / "team42_small.pth"), "input": str(tmp_path / "x.pt"),
                      "output": str(tmp_path / "y.pt")}])
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt"), derived.load().eval()(x))


@pytest.mark.parametrize("name", ["team99_rlfn_pruned", "team98_pqf_basicvsrpp_small", "team98_basicvsrpp_small"])
def test_worked_examples_are_self_contained(name: str) -> None:
    folder = REPO_ROOT / "submissions" / name
    if not folder.is_dir():
        pytest.skip(f"{name} not in this checkout")
    assert kit_imports((folder / "model.py").read_text(encoding="utf-8")) == []


def test_aliases_nested_imports_and_what_cannot_be_resolved(tmp_path: Path) -> None:
    source = '''"""doc"""
from ntirekit.models.rlfn import RLFN as Net


def head(n):
    from ntirekit.nn.blocks import conv_layer as conv
    return conv(3, n, 3)
'''
    text = self_contained_source(source)
    assert text.startswith('"""doc"""') and kit_imports(text) == []
    assert "\nNet = RLFN\n" in text and "conv = conv_layer" in text
    namespace: dict = {}
    path = tmp_path / "m.py"
    path.write_text(text, encoding="utf-8")
    exec(compile(text, str(path), "exec"), namespace)
    assert namespace["Net"] is namespace["RLFN"] and namespace["head"](5).out_channels == 5
    assert self_contained_source("import torch\n") == "import torch\n"          # nothing to do: unchanged

    with pytest.raises(BundleError, match="imports a kit module itself"):
        self_contained_source("import ntirekit.nn.blocks\n")
    with pytest.raises(BundleError, match="defines no top-level 'NoSuchNet'"):
        self_contained_source("from ntirekit.nn.blocks import NoSuchNet\n")
    with pytest.raises(BundleError, match=r"import \*"):
        self_contained_source("from ntirekit.nn.blocks import *\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from ntirekit.nn.blocks import ESA\n", encoding="utf-8")
    (tmp_path / "pkg" / "b.py").write_text("x = 1\n", encoding="utf-8")
    assert make_self_contained(tmp_path / "pkg") == [tmp_path / "pkg" / "a.py"]
