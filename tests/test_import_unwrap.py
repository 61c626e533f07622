"""``import-ntire`` on a ``test_demo.py`` that unwraps the checkpoint conditionally (``if "state_dict" in sd: ...
elif "params_ema" in sd: ... elif "params" in sd: ...``): read as "unwrap where present", so plain and wrapped
checkpoints all load strictly; and the report's last line names every missing third-party package at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ntirekit.cli.import_cmd import import_ntire as import_cli
from ntirekit.core.registry import discover
from ntirekit.core.spec import EntrySpec
from ntirekit.core.errors import EntryError
from ntirekit.core.weights import extract_state_dict
from ntirekit.pack.importer.demo import derive_map, key_spec
from tests.test_ntire_import import NET, _weights


#: these tests build the imported entries themselves, as an organizer who has reviewed their code
pytestmark = pytest.mark.usefixtures("reviewed_tmp_path")


#: one branch per team, each unwrapping its checkpoint the way the official harness of 2025 does (the same code for
#: every team); team 04 unwraps in two sequential steps
DEMO = '''
import os
import torch


def select_model(args, device):
    model_id = args.model_id
    if model_id == {team}:
        from models.team{team:02d}_Net import Net
        name, data_range = f"{{model_id:02}}_Net", 1.0
        model_path = os.path.join('model_zoo', 'team{team:02d}_net.pth')
        model = Net(3)
        sd = torch.load(model_path)
{unwrap}
        model.load_state_dict(sd, strict=True)
    return model, name, data_range, None
'''
CHAIN = '''        if "state_dict" in sd:
            sd = sd["state_dict"]
        elif "params_ema" in sd.keys():
            sd = sd["params_ema"]
        elif "params" in sd:
            sd = sd["params"]'''
SEQUENTIAL = '''        if "model" in sd:
            sd = sd["model"]
        if "params" in sd:
            sd = sd["params"]'''


def _repo(root: Path, team: int, checkpoint: object, unwrap: str = CHAIN, imports: str = "") -> Path:
    repo = root / f"repo{team}"
    (repo / "models").mkdir(parents=True)
    (repo / "model_zoo").mkdir()
    (repo / "test_demo.py").write_text(DEMO.format(team=team, unwrap=unwrap))
    (repo / "models" / f"team{team:02d}_Net.py").write_text(NET.format(imports=imports, name="Net", width=4))
    torch.save(checkpoint, repo / "model_zoo" / f"team{team:02d}_net.pth")
    return repo


@pytest.mark.parametrize("wrap", [
    lambda s, o: s,                                          # a plain state dict: the case that failed
    lambda s, o: {"state_dict": s, "params": o},             # the first key of the chain wins
    lambda s, o: {"params_ema": s, "params": o},             # params_ema before params, as the elif chain says
    lambda s, o: {"params": s},
])
def test_a_conditional_unwrap_loads_every_layout_strictly(tmp_path: Path, wrap) -> None:
    mine, other = _weights(4, 1), _weights(4, 2)
    repo = _repo(tmp_path, 1, wrap(mine, other))
    assert derive_map(repo).teams["1"]["key"] == ["state_dict", "params_ema", "params"]
    out = tmp_path / "out"
    result = CliRunner().invoke(import_cli, [str(repo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    entry = discover([out], include_defaults=False)["team01_Net"]
    model = entry.load()                                     # strict
    assert all(torch.equal(model.state_dict()[k], v) for k, v in mine.items())


def test_sequential_optional_unwraps_follow_the_code(tmp_path: Path) -> None:
    mine, other = _weights(4, 1), _weights(4, 2)
    repo = _repo(tmp_path, 4, {"model": {"params": mine}, "params": other}, unwrap=SEQUENTIAL)
    assert derive_map(repo).teams["4"]["key"] == ["model.params", "model", "params"]
    # the order of the paths is the code's: sd["model"] wins over a top-level "params"
    for checkpoint in ({"model": {"params": mine}, "params": other}, {"model": mine, "params": other},
                       {"params": mine}, mine):
        state = extract_state_dict(checkpoint, ("model.params", "model", "params"))
        assert all(torch.equal(state[k], v) for k, v in mine.items())


def test_key_spec_orders_paths_as_sequential_code_prefers_them() -> None:
    assert key_spec(["a", "b"]) == "a.b"
    assert key_spec([("x", "y")]) == ["x", "y"]
    assert key_spec(["net", ("x", "y")]) == ["net.x", "net.y", "net"]
    assert key_spec([("a",), ("b",)]) == ["a.b", "a", "b"]


def test_the_weights_key_list_in_entry_toml() -> None:
    spec = EntrySpec.from_dict({"name": "t", "track": "esr", "task": "sr", "model": {"factory": "m.py:N"},
                                "weights": {"file": "w.pth", "key": ["params_ema", "params"]}})
    assert spec.weights is not None and spec.weights.key == ("params_ema", "params")
    assert spec.to_dict()["weights"]["key"] == ["params_ema", "params"]
    with pytest.raises(EntryError, match="list of non-empty strings"):
        EntrySpec.from_dict({"name": "t", "track": "esr", "task": "sr", "model": {"factory": "m.py:N"},
                             "weights": {"file": "w.pth", "key": ["params", 3]}})


TEAM_IMPORTS = '''import os
import numpy
import ntirekit_absent_one.layers
from ntirekit_absent_two import thing
from models.team01_Net import Net as Same


try:
    import ntirekit_absent_optional
except ImportError:
    ntirekit_absent_optional = None


if __name__ == "__main__":              # the team's own profiling script (NTIRE 2022 team29's imports FLOPs, util)
    from ntirekit_absent_profiler.profile import profile
    import ntirekit_absent_onnx
'''


def test_the_report_ends_with_one_pip_install_line_naming_every_missing_package(tmp_path: Path) -> None:
    repo = _repo(tmp_path, 1, _weights(4, 1), imports=TEAM_IMPORTS)
    result = CliRunner().invoke(import_cli, [str(repo), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    # every missing one, once, by its PyPI name; not os/numpy (here), the repository's own module, the optional one,
    # nor what only the __main__ block imports
    assert last == "missing third-party packages: pip install ntirekit-absent-one ntirekit-absent-two", result.output
    clean = _repo(tmp_path, 2, _weights(4, 1))
    result = CliRunner().invoke(import_cli, [str(clean), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 0 and "pip install" not in result.output
