"""``ntirekit import-ntire``: a synthetic mini repository in the NTIRE ESR layout becomes entry folders that load
strictly and evaluate."""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ntirekit.cli.import_cmd import import_ntire as import_cli
from ntirekit.core.registry import discover
from ntirekit.core.spec import read_spec
from ntirekit.core.weights import sha256_of
from ntirekit.pack.legacy import LegacyError, import_ntire, import_repository
from ntirekit.pack import check_zip, pack


#: these tests build the imported entries themselves, as an organizer who has reviewed their code
pytestmark = pytest.mark.usefixtures("reviewed_tmp_path")


TEAM04 = '''
import torch
from torch import nn


class RLFN_cut(nn.Module):
    def __init__(self, in_nc=3, out_nc=3, nf=4, upscale=4):
        super().__init__()
        self.fea_conv = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.LR_conv = nn.Conv2d(nf, out_nc * upscale * upscale, 3, padding=1)
        self.up = nn.PixelShuffle(upscale)

    def forward(self, x):
        return self.up(self.LR_conv(torch.relu(self.fea_conv(x))))
'''

#: a 2022-style package: the model file next to a helper module it does not import (copied along all the same)
TEAM02_NET = '''
from torch import nn




class Netw(nn.Module):
    def __init__(self, upscale=4):
        super().__init__()
        self.body = nn.Conv2d(3, 3 * upscale * upscale, 3, padding=1)
        self.up = nn.PixelShuffle(upscale)

    def forward(self, x):
        return self.up(self.body(x))
'''


def mini_repo(root: Path) -> Path:
    repo = root / "NTIRE2022_ESR"
    (repo / "models" / "team02_nlffc").mkdir(parents=True)
    (repo / "model_zoo").mkdir()
    (repo / "models" / "team04_rlfn.py").write_text(TEAM04)
    (repo / "models" / "team02_nlffc" / "NLFFC.py").write_text(TEAM02_NET)
    (repo / "models" / "team02_nlffc" / "basicblock.py").write_text("X = 1\n")
    (repo / "models" / "imdn_baseline.py").write_text(TEAM02_NET.replace("Netw", "IMDN"))
    (repo / "test_demo.py").write_text("# the if/elif chain the mapping replaces\n")
    torch.manual_seed(0)
    team04 = {"fea_conv.weight": torch.randn(4, 3, 3, 3), "fea_conv.bias": torch.randn(4),
              "LR_conv.weight": torch.randn(48, 4, 3, 3), "LR_conv.bias": torch.randn(48)}
    torch.save(team04, repo / "model_zoo" / "team04_rlfn.pth")
    team02 = {"module.body.weight": torch.randn(48, 3, 3, 3), "module.body.bias": torch.randn(48)}
    torch.save({"params": team02}, repo / "model_zoo" / "team02_nlffc.pth")
    torch.save({k[len("module."):]: v for k, v in team02.items()}, repo / "model_zoo" / "team26_imdn_nb7.pth")
    return repo


MAPPING = textwrap.dedent('''
    scale = 4

    [teams.04]
    file = "models/team04_rlfn.py"
    class = "RLFN_cut"
    kwargs = { in_nc = 3, out_nc = 3 }
    checkpoint = "model_zoo/team04_rlfn.pth"
    data_range = 255.0

    [teams.02]
    file = "models/team02_nlffc/NLFFC.py"
    class = "Netw"
    checkpoint = "model_zoo/team02_nlffc.pth"
    data_range = 255.0
    key = "params"

    [teams.26]
    file = "models/imdn_baseline.py"
    class = "IMDN"
    checkpoint = "model_zoo/team26_imdn_nb7.pth"
    data_range = 1.0
    ''')


def test_import_makes_entries_that_load_strictly_and_evaluate(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    (tmp_path / "teams.toml").write_text(MAPPING)
    folders = import_ntire(repo, tmp_path / "teams.toml", tmp_path / "out")
    assert [f.name for f in folders] == ["team04_rlfn", "team02_nlffc", "team26_imdn_baseline"]
    assert (tmp_path / "out" / "team04_rlfn" / "models" / "team04_rlfn.py").read_text() == TEAM04
    package = tmp_path / "out" / "team02_nlffc" / "models" / "team02_nlffc"
    assert sorted(p.name for p in package.iterdir()) == ["NLFFC.py", "basicblock.py"]

    spec = read_spec(tmp_path / "out" / "team04_rlfn")
    assert spec.factory == "models/team04_rlfn.py:RLFN_cut" and spec.data_range == 255.0
    assert dict(spec.kwargs) == {"in_nc": 3, "out_nc": 3}
    assert spec.weights.file == "model_zoo/team04_rlfn.pth"                 # copied: never a path outside
    assert (tmp_path / "out" / "team04_rlfn" / "model_zoo" / "team04_rlfn.pth").read_bytes() == \
        (repo / "model_zoo" / "team04_rlfn.pth").read_bytes()
    assert spec.weights.sha256 == sha256_of(repo / "model_zoo" / "team04_rlfn.pth")
    assert read_spec(tmp_path / "out" / "team26_imdn_baseline").data_range == 1.0

    registry = discover([tmp_path / "out"], include_defaults=False)
    x = torch.rand(1, 3, 6, 5)
    for entry in registry.values():
        model = entry.load()                                         # strict load through the entry API
        assert model(x).shape == (1, 3, 24, 20)
    expected = torch.load(repo / "model_zoo" / "team04_rlfn.pth", weights_only=True)
    loaded = registry["team04_rlfn"].load().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_copied_weights_make_a_packable_ntire_layout(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    (tmp_path / "teams.toml").write_text(MAPPING)
    import_ntire(repo, tmp_path / "teams.toml", tmp_path / "out")
    folder = tmp_path / "out" / "team04_rlfn"
    assert read_spec(folder).weights.file == "model_zoo/team04_rlfn.pth"
    assert (folder / "model_zoo" / "team04_rlfn.pth").read_bytes() == (repo / "model_zoo" / "team04_rlfn.pth").read_bytes()
    (folder / "factsheet").mkdir()
    (folder / "factsheet" / "team04.pdf").write_bytes(b"%PDF-1.4\n")
    with zipfile.ZipFile(folder / "factsheet" / "team04_src.zip", "w") as zf:
        zf.writestr("factsheet.tex", "\\documentclass{article}")
    outcome = pack(folder, out=tmp_path / "team04.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    assert check_zip(outcome.zip_path).ok


def test_every_mapping_problem_is_reported_and_nothing_written(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    bad = textwrap.dedent('''
        [teams.04]
        file = "models/team04_rlfn.py"
        class = "RLFN_cut"
        checkpoint = "model_zoo/missing.pth"
        data_range = 255.0

        [teams.05]
        file = "../outside.py"
        class = "X"
        checkpoint = "model_zoo/team04_rlfn.pth"
        data_range = 255.0

        [teams.06]
        file = "models/team04_rlfn.py"
        class = "RLFN_cut"
        checkpoint = "model_zoo/team04_rlfn.pth"
        data_range = 2.0
        colour = "blue"

        [teams.07]
        file = "models/team04_rlfn.py"

        [teams.x]
        file = "models/team04_rlfn.py"
        ''')
    (tmp_path / "teams.toml").write_text(bad)
    with pytest.raises(LegacyError) as info:
        import_ntire(repo, tmp_path / "teams.toml", tmp_path / "out")
    message = str(info.value)
    for part in ("'../outside.py' must be a .py path inside",
                 "data_range must be 1.0 or 255.0", "unknown keys ['colour']", "[teams.07]: missing class",
                 "[teams.x]: the team id must be a number"):
        assert part in message, message
    assert not (tmp_path / "out").exists()


def test_a_team_with_absent_files_is_skipped_and_blocks_no_other(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    (tmp_path / "teams.toml").write_text(MAPPING + textwrap.dedent('''
        [teams.05]
        file = "models/team04_rlfn.py"
        class = "RLFN_cut"
        checkpoint = "model_zoo/team05_never_uploaded.pth"
        data_range = 255.0
        '''))
    outcome = import_repository(repo, tmp_path / "out", map_path=tmp_path / "teams.toml")
    assert [f.name for f in outcome.folders] == ["team04_rlfn", "team02_nlffc", "team26_imdn_baseline"]
    assert outcome.skipped == {5: "checkpoint model_zoo/team05_never_uploaded.pth is absent"}


def test_cli_import_and_check(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    (tmp_path / "teams.toml").write_text(MAPPING)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(import_cli, [str(repo), "--map", str(tmp_path / "teams.toml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.count("wrote /") == 3
    res = runner.invoke(import_cli, [str(repo), "--map", str(tmp_path / "teams.toml"), "--out", str(out)])
    assert res.exit_code == 1 and "--force" in res.output
    res = runner.invoke(import_cli, [str(repo), "--map", str(tmp_path / "teams.toml"), "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_cli_check_loads_each_entry_isolated(tmp_path: Path) -> None:
    repo = mini_repo(tmp_path)
    one_team = MAPPING.split("[teams.02]")[0]
    (tmp_path / "teams.toml").write_text(one_team)
    res = CliRunner().invoke(import_cli, [str(repo), "--map", str(tmp_path / "teams.toml"), "--out",
                                          str(tmp_path / "out"), "--check"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "team04_rlfn" in line and "wrote" not in line)
    assert row.split() == ["4", "team04_rlfn", "loads", "strictly"]
