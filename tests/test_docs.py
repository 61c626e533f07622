"""The guides: the entry.toml reference is the generated one and matches what the spec reads; every command they
show exists with the options they use."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import click
import pytest

from ntirekit.cli import main
from ntirekit.core.errors import EntryError
from ntirekit.core.spec import EntrySpec, WeightsSpec
from ntirekit.core.entry_schema import REFERENCE_BEGIN, REFERENCE_END, SCHEMA, reference_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = [DOCS / "participants.md", DOCS / "organizers.md", DOCS / "validation.md"]


def test_participants_guide_holds_the_generated_reference() -> None:
    text = (DOCS / "participants.md").read_text(encoding="utf-8")
    start, end = text.index(REFERENCE_BEGIN), text.index(REFERENCE_END) + len(REFERENCE_END)
    assert text[start:end] + "\n" == reference_markdown(), \
        "docs/participants.md: regenerate the table with ntirekit.core.entry_schema.reference_markdown()"


def test_schema_keys_are_the_keys_the_spec_reads() -> None:
    top = {k.key for k in SCHEMA if not k.table}
    tables = {k.table for k in SCHEMA if k.table}
    spec = EntrySpec(name="x", track="esr", task="sr", factory="model.py:M", weights=WeightsSpec("w.pth"),
                     published={"params": 1}, tile=128, reference=True)
    assert top | tables == set(spec.to_dict())
    assert {k.key for k in SCHEMA if k.table == "weights"} == {f.name for f in dataclasses.fields(WeightsSpec)}
    assert {k.key for k in SCHEMA if k.table == "model"} == set(spec.to_dict()["model"])
    required = {k.path for k in SCHEMA if k.default == "required"}
    assert required == {"name", "track", "task", "[model].factory"}
    full = {"name": "x", "track": "esr", "task": "sr", "scale": 4, "data_range": 1.0, "frames": 1, "description": "",
            "model": {"factory": "model.py:M", "kwargs": {}},
            "weights": {"file": "w.pth", "url": "", "sha256": "", "key": "", "strip_prefix": "", "rename": []},
            "published": {"params": 1}}
    EntrySpec.from_dict(full)                            # every documented key is accepted
    for path in required:
        broken = {k: (dict(v) if isinstance(v, dict) else v) for k, v in full.items()}
        table, _, key = path.partition("].")
        (broken[table.strip("[")] if key else broken).pop(key or path)
        with pytest.raises(EntryError):
            EntrySpec.from_dict(broken)
    with pytest.raises(EntryError, match="unknown keys"):
        EntrySpec.from_dict({**full, "undocumented": 1})


def _commands(text: str) -> list[list[str]]:
    """``ntirekit ...`` command lines of the fenced bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("ntirekit "):
                out.append(shlex.split(line)[1:])
    return out


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_every_command_of_the_guides_exists_with_its_options(guide: Path) -> None:
    commands = _commands(guide.read_text(encoding="utf-8"))
    assert len(commands) >= 5
    ctx = click.Context(main)
    for argv in commands:
        command: click.Command | None = main.get_command(ctx, argv[0])
        assert command is not None, f"{guide.name}: no command {argv[0]!r}"
        args = argv[1:]
        while isinstance(command, click.Group):
            command = command.get_command(ctx, args[0])
            args = args[1:]
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for arg in args:
            if arg.startswith("--"):
                assert arg.split("=")[0] in known, f"{guide.name}: ntirekit {argv[0]} has no option {arg}"


def _own_rep_code() -> str:
    """The example of participants.md section 7 (a team's own re-parameterizable block), as printed."""
    text = (DOCS / "participants.md").read_text(encoding="utf-8")
    section = text.split("## 7. Your own re-parameterizable blocks", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_guides_own_rep_block_merges_exactly_without_the_kit() -> None:
    """The example runs as printed without ntirekit; its merged conv equals its branches (float64, 1e-9 bound, an
    odd non-square input and non-zero biases), is one plain nn.Conv2d, and loads strictly into the deploy form."""
    import torch

    code = _own_rep_code()
    assert "ntirekit" not in code
    scope: dict = {}
    exec(compile(code, "participants.md#7", "exec"), scope)
    torch.manual_seed(0)
    block = scope["RepConv"](5).double()
    for conv in (block.conv3, block.conv1):
        torch.nn.init.uniform_(conv.bias, 0.1, 0.5)                    # non-zero biases
    x = torch.rand(2, 5, 29, 37, dtype=torch.float64)
    with torch.no_grad():
        # the branches computed here, independently of the block's forward
        branches = torch.nn.functional.conv2d(x, block.conv3.weight, block.conv3.bias, padding=1) + \
            torch.nn.functional.conv2d(x, block.conv1.weight, block.conv1.bias) + x
        block.reparameterize()
        block.reparameterize()                                       # idempotent
        merged = block(x)
    assert set(dict(block.named_children())) == {"rep_conv"} and type(block.rep_conv) is torch.nn.Conv2d
    assert float((merged - branches).abs().max()) <= 1e-9 * max(1.0, float(branches.abs().max()))

    model = scope["TinyRepSR"]().double().eval()
    y = torch.rand(1, 3, 23, 31, dtype=torch.float64)
    with torch.no_grad():
        before = model(y)
        for module in model.modules():
            if hasattr(module, "reparameterize"):
                module.reparameterize()
        after = model(y)
    assert after.shape == (1, 3, 92, 124)
    assert float((after - before).abs().max()) <= 1e-9 * max(1.0, float(before.abs().max()))
    deploy = scope["TinyRepSR"](deploy=True).double()
    deploy.load_state_dict(model.state_dict(), strict=True)
    # params by hand: head 3*16*9+16 = 448, each block 16*16*9+16 = 2320, tail 16*48*9+48 = 6960
    assert sum(p.numel() for p in deploy.parameters()) == 448 + 2 * 2320 + 6960


def test_reparam_writes_the_deploy_form_of_the_guides_own_block(tmp_path: Path) -> None:
    """`ntirekit reparam` on an entry built from the guide's code: merged in float64 within 1e-9, written with
    `deploy = true` and the merged weights, which load strictly; its params are the deploy form's."""
    from click.testing import CliRunner

    from ntirekit.core.registry import discover

    folder = tmp_path / "entries" / "team42_tinyrep"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(_own_rep_code(), encoding="utf-8")
    (folder / "entry.toml").write_text('name = "team42_tinyrep"\ntrack = "esr"\ntask = "sr"\nscale = 4\n'
                                       'data_range = 1.0\n\n[model]\nfactory = "model.py:TinyRepSR"\n',
                                       encoding="utf-8")
    out = tmp_path / "deploy" / "team42_tinyrep"
    result = CliRunner().invoke(main, ["reparam", "team42_tinyrep", "--entries", str(folder.parent), "--trust",
                                       str(folder.parent), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "params 12,592 (training form) -> 12,048 (deploy form)" in result.output   # 448 + 2*2592 + 6960
    diff = float(re.search(r"max \|training - deploy\| on a float64 check input: (\S+)", result.output).group(1))
    assert diff <= 1e-9
    assert "kwargs = { deploy = true }" in (out / "entry.toml").read_text(encoding="utf-8")
    entry = discover([tmp_path / "deploy"])["team42_tinyrep_deploy"]
    model = entry.load(pretrained=True)                               # strict load of the merged state dict
    assert not [n for n, _ in model.named_modules() if n.endswith(("conv3", "conv1"))]


def test_the_layer_lists_of_the_docs_are_the_checked_ones() -> None:
    """docs/architecture.md and the README name the layers tests/test_layers.py checks, in its order, and every
    package folder of the kit is one of them (no layer left out of the docs)."""
    from tests.test_layers import LAYERS, PACKAGE

    chain = " < ".join(LAYERS)
    assert chain in (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert chain in (DOCS.parent / "README.md").read_text(encoding="utf-8")
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders - {"baselines"} == set(LAYERS)
    table = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert all(f"| `{layer}/` |" in table for layer in LAYERS)


def test_the_docs_point_at_files_that_exist() -> None:
    """Every `ntirekit/....py` path the guides and the README name exists (organizers.md pointed at a removed
    ntirekit/legacy.py, scale.md at ntirekit/isolate.py)."""
    root = DOCS.parent
    named = 0
    for doc in [*DOCS.glob("*.md"), root / "README.md"]:
        for path in re.findall(r"`(ntirekit/[\w/]+\.py)`", doc.read_text(encoding="utf-8")):
            assert (root / path).is_file(), f"{doc.name} points at {path}, which does not exist"
            named += 1
    assert named >= 10                                   # the pattern still finds the paths the guides name
