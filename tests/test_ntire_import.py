"""``ntirekit import-ntire`` without a map: the map derived from a synthetic ``test_demo.py`` (read, never run), and
team code and checkpoints as teams ship them (relative imports, shared helpers, same-named modules, missing
dependencies, CUDA constructors, nested and prefixed checkpoints, strict=False)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ntirekit.core.trust import TRUSTED_ROOTS_ENV
from ntirekit.cli.import_cmd import import_ntire as import_cli
from ntirekit.cli.profile_cmd import profile as profile_cli
from ntirekit.core.errors import EntryError
from ntirekit.core.registry import discover
from ntirekit.core.spec import read_spec
from ntirekit.pack.importer.demo import derive_map
from ntirekit.core.team_code import MissingDependency, NeedsCuda
from ntirekit.pack.legacy import import_repository


#: these tests build the imported entries themselves, as an organizer who has reviewed their code
pytestmark = pytest.mark.usefixtures("reviewed_tmp_path")


#: a x4 net: conv(3 -> WIDTH) -> conv(WIDTH -> 48) -> pixel shuffle; WIDTH comes from wherever the team's code says
NET = '''
import torch
from torch import nn
{imports}


class {name}(nn.Module):
    def __init__(self, in_nc, out_nc=3, nf={width}, upscale=4):
        super().__init__()
        self.head = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.tail = nn.Conv2d(nf, out_nc * upscale * upscale, 3, padding=1)
        self.up = nn.PixelShuffle(upscale)

    def forward(self, x):
        return self.up(self.tail(torch.relu(self.head(x))))
'''

DEMO = '''
import os
import torch


def select_model(args, device):
    model_id = args.model_id
    tile = None
    if model_id == -1:
        from models.plain_baseline import Plain
        name, data_range = f"{model_id:02}_Plain_baseline", 1.0
        model_path = os.path.join('model_zoo', 'plain_baseline.pth')
        model = Plain(3)
        model.load_state_dict(torch.load(model_path), strict=True)
    elif model_id == 1:
        from models.team01_Pos import PosNet
        name, data_range = f"{model_id:02}_PosNet", 255.0
        model_path = os.path.join('model_zoo', 'team01_pos.pth')
        model = PosNet(3, 3, 6)
        model.load_state_dict(torch.load(model_path)['params'], strict=True)
    elif model_id == 2:
        pass
    elif model_id == 3:
        from models.team03_Gone import Gone
        name, data_range = f"{model_id:02}_Gone", 1.0
        model_path = os.path.join('model_zoo', 'team03_gone.pth')
        model = Gone(3)
        model.load_state_dict(torch.load(model_path), strict=True)
    elif model_id == 4:
        import importlib
        model_module = importlib.import_module(f'models.team{model_id:02}_Tiled')
        name, data_range = f"{model_id:02}_Tiled", 1.0
        model = getattr(model_module, 'TiledNet')(3, upscale=4).eval().to(device)
        model_path = os.path.join('model_zoo', f'team{model_id:02}_tiled.pth')
        state_dict = torch.load(model_path)
        new_state_dict = dict()
        for k, v in state_dict.items():
            new_state_dict[k.replace("module.", "")] = v
        model.load_state_dict(new_state_dict, strict=False)
        tile = 64
    elif model_id == 5:
        from models.team05_pkg.net import PkgNet
        name, data_range = f"{model_id:02}_PkgNet", 1.0
        model_path = os.path.join('model_zoo', 'team05_pkg.pth')
        model = PkgNet(in_nc=3)
        model.load_state_dict(torch.load(model_path), strict=True)
    else:
        raise NotImplementedError(f"Model {model_id} is not implemented.")
    model.eval()
    return model, name, data_range, tile
'''


def _weights(width: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"head.weight": torch.randn(width, 3, 3, 3, generator=g), "head.bias": torch.randn(width, generator=g),
            "tail.weight": torch.randn(48, width, 3, 3, generator=g), "tail.bias": torch.randn(48, generator=g)}


def demo_repo(root: Path, width: int = 4) -> Path:
    """A repository in the official layout; the models take their width from a shared ``models/basicblock.py``
    (team 01, the baseline) or a package-relative ``.block`` (team 05), as teams shipped them."""
    repo = root / "NTIRE_ESR"
    (repo / "models" / "team05_pkg").mkdir(parents=True)
    (repo / "model_zoo").mkdir()
    (repo / "utils").mkdir()
    (repo / "test_demo.py").write_text(DEMO)
    (repo / "models" / "basicblock.py").write_text(f"from utils.consts import BASE\nWIDTH = BASE + {width - 1}\n")
    (repo / "utils" / "consts.py").write_text("BASE = 1\n")
    (repo / "models" / "plain_baseline.py").write_text(
        NET.format(imports="from models.basicblock import WIDTH", name="Plain", width="WIDTH"))
    (repo / "models" / "team01_Pos.py").write_text(
        NET.format(imports="from models import basicblock", name="PosNet", width="basicblock.WIDTH"))
    (repo / "models" / "team04_Tiled.py").write_text(NET.format(imports="", name="TiledNet", width=5))
    (repo / "models" / "team05_pkg" / "block.py").write_text("WIDTH = 7\n")
    (repo / "models" / "team05_pkg" / "net.py").write_text(
        NET.format(imports="from .block import WIDTH", name="PkgNet", width="WIDTH"))
    torch.save(_weights(width, 0), repo / "model_zoo" / "plain_baseline.pth")
    torch.save({"params": _weights(6, 1)}, repo / "model_zoo" / "team01_pos.pth")
    tiled = {f"module.{k}": v for k, v in _weights(5, 2).items() if k != "tail.bias"}
    tiled["module.extra.weight"] = torch.zeros(1)
    torch.save(tiled, repo / "model_zoo" / "team04_tiled.pth")
    torch.save(_weights(7, 3), repo / "model_zoo" / "team05_pkg.pth")
    return repo


def test_the_map_is_derived_from_test_demo(tmp_path: Path) -> None:
    derived = derive_map(demo_repo(tmp_path))
    assert derived.teams == {
        "-1": {"file": "models/plain_baseline.py", "class": "Plain", "kwargs": {"in_nc": 3},
               "checkpoint": "model_zoo/plain_baseline.pth", "data_range": 1.0},
        "1": {"file": "models/team01_Pos.py", "class": "PosNet", "kwargs": {"in_nc": 3, "out_nc": 3, "nf": 6},
              "checkpoint": "model_zoo/team01_pos.pth", "data_range": 255.0, "key": "params"},
        "4": {"file": "models/team04_Tiled.py", "class": "TiledNet", "kwargs": {"in_nc": 3, "upscale": 4},
              "checkpoint": "model_zoo/team04_tiled.pth", "data_range": 1.0, "strip_prefix": "module.",
              "strict": False, "tile": 64},
        "5": {"file": "models/team05_pkg/net.py", "class": "PkgNet", "kwargs": {"in_nc": 3},
              "checkpoint": "model_zoo/team05_pkg.pth", "data_range": 1.0}}
    assert derived.skipped == {2: "the branch is 'pass' (no submission)", 3: "model file models/team03_Gone.py is absent"}


def test_what_select_model_sets_after_the_chain_wins(tmp_path: Path) -> None:
    """The 2024 harness sets ``tile = None`` after the chain: no team is tiled, whatever its branch says."""
    repo = demo_repo(tmp_path)
    demo = (repo / "test_demo.py").read_text()
    (repo / "test_demo.py").write_text(demo.replace("    model.eval()\n", "    model.eval()\n    tile = None\n"))
    assert "tile" not in derive_map(repo).teams["4"]


def test_import_without_a_map_skips_absent_teams_and_loads_the_rest(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    outcome = import_repository(repo, tmp_path / "out", write_map=tmp_path / "out" / "teams.toml")
    assert [p.name for p in outcome.teams] == ["baseline1_plain_baseline", "team01_Pos", "team04_Tiled",
                                               "team05_pkg"]
    assert outcome.skipped == {2: "the branch is 'pass' (no submission)",
                               3: "model file models/team03_Gone.py is absent"}
    # what each team imports from the repository came along, in its layout
    base = tmp_path / "out" / "baseline1_plain_baseline"
    assert sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py")) == [
        "models/basicblock.py", "models/plain_baseline.py", "utils/consts.py"]
    assert read_spec(tmp_path / "out" / "team04_Tiled").tile == 64
    assert read_spec(tmp_path / "out" / "team04_Tiled").weights.strict is False
    registry = discover([tmp_path / "out"], include_defaults=False)
    x = torch.rand(1, 3, 5, 6)
    for name, width, seed in (("baseline1_plain_baseline", 4, 0), ("team01_Pos", 6, 1), ("team05_pkg", 7, 3)):
        entry = registry[name]
        model = entry.load()
        assert model.head.out_channels == width and model(x).shape == (1, 3, 20, 24)
        assert torch.equal(model.head.weight, _weights(width, seed)["head.weight"])
    tiled = registry["team04_Tiled"]
    model = tiled.load()          # strict=False as the harness: tail.bias missing, extra.weight unexpected
    assert tiled.notes == {"missing": ["tail.bias"], "unexpected": ["extra.weight"]}
    assert torch.equal(model.tail.weight, _weights(5, 2)["tail.weight"])
    # the written map reads back as a --map and gives the same entries
    again = import_repository(repo, tmp_path / "again", map_path=tmp_path / "out" / "teams.toml")
    assert [read_spec(f).to_dict() == read_spec(tmp_path / "out" / f.name).to_dict() for f in again.folders] == \
        [True] * 4


def test_map_overrides_merge_team_by_team(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    (tmp_path / "fix.toml").write_text(textwrap.dedent('''
        [teams.1]
        data_range = 1.0
        name = "team01_fixed"

        [teams.3]
        file = "models/team04_Tiled.py"
        class = "TiledNet"
        kwargs = { in_nc = 3 }
        checkpoint = "model_zoo/team04_tiled.pth"
        data_range = 1.0
        strict = false
        '''))
    outcome = import_repository(repo, tmp_path / "out", map_path=tmp_path / "fix.toml")
    spec = read_spec(tmp_path / "out" / "team01_fixed")
    assert spec.data_range == 1.0 and spec.weights.key == "params" and dict(spec.kwargs)["nf"] == 6
    assert "team03_Tiled" in [p.name for p in outcome.teams] and 3 not in outcome.skipped


def test_same_named_modules_of_two_teams_do_not_clash(tmp_path: Path) -> None:
    """Two repositories whose teams both import ``models.basicblock`` (different widths) and ``utils.consts``."""
    narrow, wide = demo_repo(tmp_path / "a", width=4), demo_repo(tmp_path / "b", width=9)
    torch.save({"params": _weights(6, 1)}, wide / "model_zoo" / "team01_pos.pth")
    import_repository(narrow, tmp_path / "out_a")
    import_repository(wide, tmp_path / "out_b")
    a = discover([tmp_path / "out_a"], include_defaults=False)["baseline1_plain_baseline"]
    b = discover([tmp_path / "out_b"], include_defaults=False)["baseline1_plain_baseline"]
    assert a.load().head.out_channels == 4 and b.load().head.out_channels == 9     # both strict, one process
    assert a.load().head.out_channels == 4
    import sys
    assert "models" not in sys.modules and "models.basicblock" not in sys.modules


def _entry(tmp_path: Path, code: str, state: dict | None = None, **weights: object) -> object:
    folder = tmp_path / "team09_x"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "team09_x.py").write_text(code)
    lines = ['name = "team09_x"', 'track = "esr"', 'task = "sr"', "[model]", 'factory = "models/team09_x.py:Net"']
    if state is not None:
        torch.save(state, folder / "w.pth")
        lines += ["[weights]", 'file = "w.pth"'] + [f"{k} = {json.dumps(v)}" for k, v in weights.items()]
    (folder / "entry.toml").write_text("\n".join(lines) + "\n")
    return discover([folder], include_defaults=False)["team09_x"]


def test_a_missing_third_party_module_is_one_line(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "import ntirekit_absent_dep.ops\n")
    with pytest.raises(MissingDependency) as info:
        entry.build()
    assert str(info.value) == "team09_x needs ntirekit_absent_dep (pip install ntirekit-absent-dep)"


def test_a_missing_repository_module_is_not_a_pip_hint(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "from models.not_copied import X\n")
    with pytest.raises(EntryError, match=r"^team09_x: imports models.not_copied, which the entry folder lacks$"):
        entry.build()


CUDA_NET = '''
import torch
from torch import nn




class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 48, 3, padding=1).cuda()
        self.scale = nn.Parameter(torch.ones(1, device="cuda"))
        self.up = nn.PixelShuffle(4)
        {extra}

    def forward(self, x):
        return self.up(self.conv(x)) * self.scale
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows the behaviour without CUDA")
def test_a_cuda_constructor_is_built_on_cpu_and_says_so(tmp_path: Path) -> None:
    entry = _entry(tmp_path, CUDA_NET.format(extra=""))
    model = entry.build()
    assert model.conv.weight.device.type == "cpu" and model.scale.device.type == "cpu"
    assert model(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)
    assert entry.notes["build"].startswith("built on CPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows the behaviour without CUDA")
def test_a_constructor_that_really_needs_cuda_is_one_line(tmp_path: Path) -> None:
    entry = _entry(tmp_path, CUDA_NET.format(extra="self.dev = torch.cuda.current_device()"))
    with pytest.raises(NeedsCuda, match=r"^team09_x needs CUDA: its constructor fails on CPU"):
        entry.build()


PLAIN = NET.format(imports="", name="Net", width=4).replace("(self, in_nc,", "(self, in_nc=3,")


@pytest.mark.parametrize("wrap, how", [
    (lambda s: {"model": {f"netG.{k}": v for k, v in s.items()}}, "['model'], stripped netG."),
    (lambda s: {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in s.items()}},
     "['model_state_dict'], stripped module."),
    (lambda s: {f"module.{k}": v for k, v in s.items()}, "top level, stripped module."),
    (lambda s: {"params": {f"module.netG.{k}": v for k, v in s.items()}}, "['params'], stripped module.+netG."),
])
def test_wrapped_checkpoints_are_unwrapped_strictly_and_recorded(tmp_path: Path, wrap, how) -> None:
    state = _weights(4, 5)
    entry = _entry(tmp_path, PLAIN, wrap(state))
    model = entry.load()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert entry.notes == {"unwrapped": how}


def test_an_unwrapped_checkpoint_that_does_not_fit_still_fails(tmp_path: Path) -> None:
    state = _weights(4, 5)
    del state["tail.bias"]
    entry = _entry(tmp_path, PLAIN, {"params": state})
    with pytest.raises(EntryError, match="does not fit the model: missing 1: tail.bias"):
        entry.load()


PRINTING = PLAIN.replace("        super().__init__()", "        super().__init__()\n        print('building!')")


def test_profile_json_is_only_json_whatever_the_model_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry(tmp_path, "print('importing team code')\n" + PRINTING)
    res = CliRunner().invoke(profile_cli, ["team09_x", "--entries", str(tmp_path / "team09_x"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["params"] == 3 * 4 * 9 + 4 + 4 * 48 * 9 + 48
    assert "building!" in res.stderr                              # reviewed code, in this process: on stderr
    monkeypatch.delenv(TRUSTED_ROOTS_ENV)                          # untrusted: in the jail, stored, never echoed
    res = CliRunner().invoke(profile_cli, ["team09_x", "--entries", str(tmp_path / "team09_x"), "--json"])
    profile = json.loads(res.stdout)
    assert profile["params"] == 3 * 4 * 9 + 4 + 4 * 48 * 9 + 48
    assert "building!" in profile["output"] and "building!" not in res.stderr


@pytest.mark.slow
def test_cli_report_checks_every_team_isolated(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(import_cli, [str(repo), "--out", str(out), "--check", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    by_team = {r["team"]: r for r in report["teams"]}
    assert by_team[-1]["status"] == "loads strictly" and "params" not in by_team[-1]    # a verdict, not a figure
    assert by_team[1]["status"] == "loads strictly"
    assert by_team[4]["status"].startswith("loads with strict=False as the harness does: 1 missing, 1 unexpected")
    assert by_team[4]["missing"] == ["tail.bias"] and by_team[4]["unexpected"] == ["extra.weight"]
    assert by_team[2]["status"] == "skipped: the branch is 'pass' (no submission)"
    assert by_team[3]["status"].startswith("skipped: model file models/team03_Gone.py is absent")
    assert report["evaluate"] == f"ntirekit eval --entries {out} --track overall"
