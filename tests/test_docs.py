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
