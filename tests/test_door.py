"""One door for team code (issue 21, item 1): no CLI command imports or runs an untrusted entry's code in the
organizer's process.

A hostile entry's ``model.py`` appends a line (its pid, cwd and ``$HOME``) to a marker file at an absolute path under
the test's temporary folder, when it is imported and when its network is built. Every CLI command that takes an entry
(by name, ``--entries``, a folder, a zip or a repository) is run on it, in this process (click's ``CliRunner``), with
the entry untrusted (under an ``--entries`` folder, under ``./submissions``, unpacked from a zip, imported from a
repository). Afterwards the marker holds no line written by this process, from its cwd or with its ``$HOME``: the
code either ran in the sandbox (where ``/tmp`` is a private tmpfs: with bubblewrap the marker does not exist on the
host at all) or the command refused with one line naming ``--trust``. The commands that run the code in the sandbox
also show that it did run there (its output, or figures only its graph gives).

With ``--trust FOLDER`` the in-process commands do import it: the marker appears with this process's pid (the test
can fail). :func:`test_every_command_is_covered` enumerates :data:`ntirekit.cli.COMMANDS`: a command added later
without a case here fails it, and the exempt commands are checked to take no entry.
"""

from __future__ import annotations

import json
import os
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import pytest
import torch
from click.testing import CliRunner, Result

from ntirekit.cli import COMMANDS, LazyGroup, main
from ntirekit.core.trust import TRUSTED_ROOTS_ENV, UNTRUSTED_ROOTS_ENV, is_untrusted
from ntirekit.jail.bwrap import bwrap_problem
from tests.helpers.sandbox import EXPECTED_SANDBOX

#: commands that take no entry, no entry folder, no zip and no repository (checked below: no such parameter)
EXEMPT = {"data", "leaderboard", "score", "codabench"}       # results, records and ground truth: never an entry

SANDBOXED = bwrap_problem() is None
#: the hostile entry (named as a submission must be: team + two digits)
EVIL = "team01_evil"

MODEL = '''
import json, os, pathlib
import torch
from torch import nn

MARKER = {marker!r}


def _mark(where):
    print("TEAM-CODE-RAN", where, flush=True)
    try:
        path = pathlib.Path(MARKER)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps({{"where": where, "pid": os.getpid(), "cwd": os.getcwd(),
                                "home": os.environ.get("HOME")}}) + "\\n")
    except OSError:
        pass


_mark("import")


class {cls}(nn.Module):
    def __init__(self, scale=4):
        super().__init__()
        _mark("init")
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.conv(x))
'''

#: the hostile network's parameters (conv 3 -> 48, 3x3, with bias)
PARAMS = 48 * 3 * 9 + 48

DEMO = '''
import os
import torch


def select_model(args, device):
    model_id = args.model_id
    tile = None
    if model_id == 1:
        from models.team01_Evil import EvilNet
        name, data_range = f"{model_id:02}_EvilNet", 1.0
        model_path = os.path.join('model_zoo', 'team01_evil.pth')
        model = EvilNet()
        model.load_state_dict(torch.load(model_path), strict=True)
    else:
        raise NotImplementedError(f"Model {model_id} is not implemented.")
    model.eval()
    return model, name, data_range, tile
'''


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(48, 3, 3, 3, generator=g) * 0.1, "conv.bias": torch.zeros(48)}


def write_evil(folder: Path, marker: Path, name: str = "team01_evil") -> Path:
    """The hostile entry ``name`` in ``folder``: marker-writing ``model.py``, ``entry.toml``, seeded weights."""
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL.format(marker=str(marker), cls="Net"))
    (folder / "entry.toml").write_text(textwrap.dedent(f'''\
        name = "{name}"
        track = "esr"
        task = "sr"
        scale = 4
        data_range = 1.0

        [model]
        factory = "model.py:Net"

        [weights]
        file = "w.pth"
        '''))
    torch.save(_state(), folder / "w.pth")
    return folder


def write_repo(root: Path, marker: Path) -> Path:
    """A repository in the official NTIRE ESR layout whose one team is the hostile network."""
    (root / "models").mkdir(parents=True)
    (root / "model_zoo").mkdir()
    (root / "test_demo.py").write_text(DEMO)
    (root / "models" / "team01_Evil.py").write_text(MODEL.format(marker=str(marker), cls="EvilNet"))
    torch.save(_state(), root / "model_zoo" / "team01_evil.pth")
    return root


@dataclass
class World:
    tmp: Path
    root: Path            # an --entries folder holding the hostile entry
    folder: Path          # the hostile entry
    marker: Path
    cwd: Path             # the organizer's working directory (has ./submissions)
    runner: CliRunner

    def run(self, *args: Any) -> Result:
        """``ntirekit ARGS`` in this process; ``{root}`` and ``{tmp}`` in an argument are the --entries folder and
        the test's temporary folder."""
        argv = [str(a).format(root=self.root, tmp=self.tmp) for a in args]
        return self.runner.invoke(main, argv, catch_exceptions=False)

    def lines(self) -> list[dict[str, Any]]:
        if not self.marker.exists():
            return []
        return [json.loads(line) for line in self.marker.read_text().splitlines() if line.strip()]

    def organizer_lines(self) -> list[dict[str, Any]]:
        """Marker lines written by this process, from its working directory or with its ``$HOME``."""
        home = os.environ.get("HOME")
        return [m for m in self.lines() if m["pid"] == os.getpid() or m["cwd"] == str(self.cwd) or m["home"] == home]


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A fresh organizer: no trusted or untrusted roots declared, no $NTIREKIT_ENTRIES, an empty working directory."""
    for variable in (UNTRUSTED_ROOTS_ENV, TRUSTED_ROOTS_ENV):
        monkeypatch.setenv(variable, "")          # restored after the test, whatever a command adds
    monkeypatch.delenv("NTIREKIT_ENTRIES", raising=False)
    cwd = tmp_path / "organizer"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    marker = tmp_path / "marker" / "evil.jsonl"
    root = tmp_path / "teams"
    folder = write_evil(root / "team01_evil", marker)
    return World(tmp_path, root, folder, marker, cwd, CliRunner())


def _error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error")]


# ------------------------------------------------------------------------------------------------- the cases
# Each case runs one command on the hostile entry and returns what shows the code ran in the sandbox (a text the
# team code printed or a figure only its graph gives), "" when the command runs no code by design, or "refused".

def _list(w: World) -> str:
    result = w.run("list", "--entries", w.root, "--json")
    row = next(r for r in json.loads(result.stdout) if r["name"] == EVIL)
    assert result.exit_code == 0 and row["untrusted"] is True and row["params"] is None
    return ""


def _list_submissions(w: World) -> str:
    write_evil(w.cwd / "submissions" / "team02_evil", w.marker, "team02_evil")
    result = w.run("list", "--json")
    row = next(r for r in json.loads(result.stdout) if r["name"] == "team02_evil")
    assert result.exit_code == 0 and row["untrusted"] is True and row["params"] is None
    return ""


def _list_load(w: World) -> str:
    result = w.run("list", "--entries", w.root, "--json", "--load")
    row = next(r for r in json.loads(result.stdout) if r["name"] == EVIL)
    assert result.exit_code == 0 and row["params"] == PARAMS, result.output
    return "params counted on its graph"


def _profile(w: World) -> str:
    result = w.run("profile", EVIL, "--entries", w.root, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["params"] == PARAMS and profile["measured"] == "graph"
    assert "TEAM-CODE-RAN" in profile["output"]
    return profile["sandbox"]


def _eval(track: str, *extra: Any) -> Callable[[World], str]:
    def case(w: World) -> str:
        out = w.tmp / "results"
        result = w.run("eval", "--track", track, *extra, "--entry", EVIL, "--device", "cpu", "--out", out,
                       "--quiet", "--leaderboard", "none")
        records = [json.loads(p.read_text()) for p in out.glob("*.json")]
        assert len(records) == 1 and records[0]["status"] == "ok", (result.output, records)
        assert "TEAM-CODE-RAN" in records[0]["output"]
        return records[0]["sandbox"]
    return case


def _eval_submissions(w: World) -> str:
    (w.cwd / "submissions").mkdir()
    os.replace(w.folder, w.cwd / "submissions" / EVIL)
    return _eval("complexity")(w)


def _refused(*args: str) -> Callable[[World], str]:
    def case(w: World) -> str:
        result = w.run(*args)
        assert result.exit_code != 0
        errors = _error_lines(result)
        assert len(errors) == 1 and "--trust" in errors[0] and "untrusted" in errors[0], result.output
        return "refused"
    return case


def _pack(w: World) -> str:
    zip_path = w.tmp / "evil.zip"
    result = w.run("pack", w.folder, "--out", zip_path, "--json")
    assert zip_path.is_file(), result.output
    report = json.loads(result.stdout)
    assert report["info"]["load_sandbox"] == EXPECTED_SANDBOX, report
    assert not any(p["code"] == "load-failed" for p in report["problems"]), report
    return "loaded in the sandbox"


def _pack_timed_entry(w: World) -> str:
    """``pack --format esr-results --entry NAME`` times an entry found by name in the default roots (here
    ``./submissions``)."""
    (w.cwd / "submissions").mkdir()
    os.replace(w.folder, w.cwd / "submissions" / EVIL)
    results = w.tmp / "sr"
    results.mkdir()
    result = w.run("pack", results, "--format", "esr-results", "--entry", EVIL, "--device", "cpu", "--out",
                   w.tmp / "sr.zip", "--json")
    timing = [p["message"] for p in json.loads(result.stdout)["problems"] if p["code"] == "timing-failed"]
    assert len(timing) == 1 and "untrusted code" in timing[0] and "--trust" in timing[0], result.output
    return "refused"


def _check(w: World) -> str:
    zip_path = w.tmp / "evil.zip"
    w.run("pack", w.folder, "--out", zip_path)
    assert zip_path.is_file()
    result = w.run("check", zip_path, "--load", "--json")
    report = json.loads(result.stdout)
    assert report["info"]["load_sandbox"] == EXPECTED_SANDBOX, report
    assert not any(p["code"] == "load-failed" for p in report["problems"]), report
    return "loaded in the sandbox"


def _import(w: World) -> str:
    repo = write_repo(w.tmp / "NTIRE_ESR", w.marker)
    result = w.run("import-ntire", repo, "--out", w.tmp / "imported", "--check", "--json")
    teams = json.loads(result.stdout)["teams"]
    assert [t["status"] for t in teams] == ["loads strictly"], result.output
    return "loaded in the sandbox"


def _regress(w: World) -> str:
    metrics = w.tmp / "metrics"
    result = w.run("regress", "--record", "--entry", EVIL, "--track", "complexity", "--entries", w.root,
                   "--against", metrics, "--device", "cpu")
    records = [json.loads(p.read_text()) for p in metrics.glob("*.json")]
    assert result.exit_code == 0 and len(records) == 1 and records[0]["params"] == PARAMS, result.output
    assert "TEAM-CODE-RAN" in records[0]["output"]
    return records[0]["sandbox"]


#: (command, case) -> the case
CASES: dict[tuple[str, str], Callable[[World], str]] = {
    ("list", "entries"): _list,
    ("list", "submissions"): _list_submissions,
    ("list", "load"): _list_load,
    ("profile", "entries"): _profile,
    ("eval", "psnr"): _eval("psnr", "--data", "sample", "--entries", "{root}"),
    ("eval", "complexity"): _eval("complexity", "--entries", "{root}"),
    ("eval", "submissions"): _eval_submissions,
    ("reparam", "entries"): _refused("reparam", EVIL, "--entries", "{root}", "--out", "{tmp}/deploy"),
    ("prune", "entries"): _refused("prune", EVIL, "--entries", "{root}", "--out", "{tmp}/pruned",
                                   "--target-macs-ratio", "0.5"),
    ("prune", "list"): _refused("prune", EVIL, "--entries", "{root}", "--list"),
    ("train", "entries"): _refused("train", EVIL, "--entries", "{root}", "--steps", "1", "--out", "{tmp}/trained",
                                   "--ckpt-dir", "{tmp}/ckpt", "--device", "cpu", "--no-progress", "--val", "none"),
    ("finetune", "entries"): _refused("finetune", EVIL, "--entries", "{root}", "--steps", "1", "--out",
                                      "{tmp}/tuned", "--ckpt-dir", "{tmp}/ckpt", "--device", "cpu", "--no-progress",
                                      "--val", "none"),
    ("pack", "folder"): _pack,
    ("pack", "timed-entry"): _pack_timed_entry,
    ("check", "load"): _check,
    ("import-ntire", "check"): _import,
    ("regress", "record"): _regress,
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[0]}-{k[1]}")
def test_no_command_runs_team_code_in_the_organizers_process(key: tuple[str, str], world: World) -> None:
    shown = CASES[key](world)
    assert world.organizer_lines() == [], world.lines()
    if SANDBOXED:
        assert not world.marker.exists(), world.lines()          # the sandbox's /tmp is its own
    # a case that ran the code names the sandbox its record shows: this machine's, never another
    assert shown in ("", "refused", "params counted on its graph", "loaded in the sandbox", EXPECTED_SANDBOX), shown


# ------------------------------------------------------------------------------------------------- trusted

TRUSTED: dict[str, tuple[str, ...]] = {
    "list": ("list", "--entries", "{root}", "--trust", "{root}", "--json"),
    "profile": ("profile", EVIL, "--entries", "{root}", "--trust", "{root}", "--device", "cpu", "--json"),
    "eval": ("eval", "--track", "complexity", "--entries", "{root}", "--trust", "{root}", "--entry", EVIL,
             "--device", "cpu", "--out", "{tmp}/results", "--quiet", "--leaderboard", "none"),
    "reparam": ("reparam", EVIL, "--entries", "{root}", "--trust", "{root}", "--out", "{tmp}/deploy"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(TRUSTED))
def test_with_trust_the_same_command_runs_it_here(command: str, world: World) -> None:
    """The marker works: a trusted folder's code is imported in this process, its lines carry this pid."""
    world.run(*TRUSTED[command])
    mine = [m for m in world.lines() if m["pid"] == os.getpid()]
    assert mine and all(m["cwd"] == str(world.cwd) for m in mine), world.lines()


# ------------------------------------------------------------------------------------------------- coverage

def _parameter_names(command: click.Command) -> set[str]:
    names = {p.name or "" for p in command.params}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _parameter_names(sub)
    return names


def test_every_command_is_covered() -> None:
    covered = {command for command, _ in CASES}
    assert covered | EXEMPT == set(COMMANDS), f"not covered: {sorted(set(COMMANDS) - covered - EXEMPT)}"
    assert not covered & EXEMPT
    assert set(TRUSTED) <= covered
    group = LazyGroup()
    entry_like = ("entry", "entries", "entry_name", "entry_roots", "src", "zip_path", "repo_dir", "trusted")
    for name in EXEMPT:
        params = _parameter_names(group.get_command(click.Context(main), name))
        assert not params & set(entry_like), (name, params)


# ------------------------------------------------------------------------------------------------- import-ntire

def test_imported_team_code_stays_untrusted(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_repo(world.tmp / "NTIRE_ESR", world.marker)
    out = world.tmp / "imported"
    result = world.run("import-ntire", repo, "--out", out)
    assert result.exit_code == 0, result.output
    team = next(p for p in out.iterdir() if p.is_dir())
    monkeypatch.setenv("NTIREKIT_ENTRIES", str(out))
    result = world.run("list", "--json")
    row = next(r for r in json.loads(result.stdout) if r["name"] == team.name)   # found through NTIREKIT_ENTRIES
    assert result.exit_code == 0 and row["untrusted"] is True, result.output
    assert world.organizer_lines() == [], world.lines()
    assert is_untrusted(team)


@pytest.mark.slow
def test_a_zip_made_by_pack_holds_the_hostile_code(world: World) -> None:
    """The zip ``check --load`` reads really carries the marker-writing model (so that case tests something)."""
    zip_path = world.tmp / "evil.zip"
    world.run("pack", world.folder, "--out", zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        models = [n for n in archive.namelist() if n.endswith("model.py")]
        assert models and "_mark(\"init\")" in archive.read(models[0]).decode()
