"""``ntirekit import-ntire``: entry folders from a checkout in the NTIRE ESR repository layout.

The official repositories keep each team's model in ``models/teamXX_Name.py`` (2022 also allowed a package folder,
``models/teamXX_Name/...``) and its checkpoint in ``model_zoo/``, and hard-code the rest (class, keyword arguments,
input data range, nested checkpoint key) in an if/elif chain of ``test_demo.py``. A mapping file states those facts
once per team instead::

    # teams.toml
    scale = 4                                   # default for every team (optional, 4 if absent)

    [teams.04]                                  # the team id (zero-padded in names: team04)
    file = "models/team04_rlfn.py"              # the model file; a package's file: "models/team02_nlffc/NLFFC.py"
    class = "RLFN_cut"                          # class (or function) in that file
    kwargs = { in_nc = 3, out_nc = 3 }          # optional
    checkpoint = "model_zoo/team04_rlfn.pth"
    data_range = 255.0                          # 1.0 or 255.0: always stated, never guessed
    # optional: name = "team04_rlfn", key = "params", strip_prefix = "", rename = [["old.", "new."]], scale = 4

Each team becomes ``OUT/<name>/`` holding ``entry.toml`` and the model code copied under its repository path
(``models/team04_rlfn.py``; for a package, every ``.py`` file of its folder): the NTIRE layout inside an entry folder,
which the kit can evaluate, rank and pack. The checkpoint is referenced by its absolute path and sha256, or copied to
``model_zoo/`` with ``copy_weights=True``. The default name is the model file's (or package folder's) name when it
follows ``teamXX_Name``, else ``teamXX_<file name>``.

Every problem of the mapping (unknown keys, missing files, paths outside the repository, bad data ranges, duplicate
names) is collected and raised together in one :class:`LegacyError`; nothing is written unless the whole mapping is
valid.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ntirekit.core.spec import SPEC_FILE, EntryError, EntrySpec
from ntirekit.core import tomlw
from ntirekit.pack.formats import TEAM_NAME, inside_path
from ntirekit.core.weights import sha256_of

TEAM_KEYS = frozenset({"file", "class", "kwargs", "checkpoint", "data_range", "name", "key", "strip_prefix", "rename",
                       "scale"})


class LegacyError(EntryError):
    """The mapping cannot be imported; the message lists every problem, one per line."""


@dataclass(frozen=True)
class TeamImport:
    """One team's resolved mapping."""

    team: int
    name: str
    spec: dict[str, Any]
    code: tuple[str, ...]          # repository-relative paths of the files to copy
    checkpoint: Path


def _code_files(repo: Path, model_rel: str) -> tuple[str, ...]:
    """The model file alone, or every ``.py`` file of its package folder (a file below ``models/<package>/``)."""
    path = repo / model_rel
    parent = path.parent
    if parent == repo or parent == repo / "models":
        return (model_rel,)
    return tuple(sorted(p.relative_to(repo).as_posix() for p in parent.rglob("*.py")
                        if "__pycache__" not in p.parts))


def _default_name(team: int, model_rel: str) -> str:
    path = Path(model_rel)
    candidates = [path.stem] + ([path.parent.name] if path.parent.name != "models" else [])
    for candidate in reversed(candidates):
        if TEAM_NAME.match(candidate):
            return candidate
    return f"team{team:02d}_{path.stem}"


def plan_import(repo_dir: str | Path, mapping: Mapping[str, Any], *, copy_weights: bool = False) -> list[TeamImport]:
    """Resolve and validate every team of ``mapping``; :class:`LegacyError` lists every problem found."""
    repo = Path(repo_dir).resolve()
    problems: list[str] = []
    if not repo.is_dir():
        raise LegacyError(f"{repo}: not a folder")
    teams = mapping.get("teams")
    if not isinstance(teams, Mapping) or not teams:
        raise LegacyError("the mapping needs a [teams.NN] table per team")
    unknown_top = set(mapping) - {"teams", "scale"}
    if unknown_top:
        problems.append(f"unknown top-level keys {sorted(unknown_top)}")
    default_scale = mapping.get("scale", 4)
    plans: list[TeamImport] = []
    names: dict[str, str] = {}
    for key, team in teams.items():
        where = f"[teams.{key}]"
        try:
            team_id = int(key)
            if not 0 <= team_id <= 99:
                raise ValueError
        except ValueError:
            problems.append(f"{where}: the team id must be a number 0-99")
            continue
        if not isinstance(team, Mapping):
            problems.append(f"{where}: must be a table")
            continue
        unknown = set(team) - TEAM_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        missing = [k for k in ("file", "class", "checkpoint", "data_range") if k not in team]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        model_rel = inside_path(str(team["file"]))
        ckpt_rel = inside_path(str(team["checkpoint"]))
        ok = True
        if model_rel is None or not model_rel.endswith(".py"):
            problems.append(f"{where}: file {team['file']!r} must be a .py path inside the repository")
            ok = False
        elif not (repo / model_rel).is_file():
            problems.append(f"{where}: model file {model_rel} not found in {repo}")
            ok = False
        if ckpt_rel is None:
            problems.append(f"{where}: checkpoint {team['checkpoint']!r} must be a path inside the repository")
            ok = False
        elif not (repo / ckpt_rel).is_file():
            problems.append(f"{where}: checkpoint {ckpt_rel} not found in {repo}")
            ok = False
        if not ok:
            continue
        assert model_rel is not None and ckpt_rel is not None
        name = str(team.get("name") or _default_name(team_id, model_rel))
        if name in names:
            problems.append(f"{where}: entry name {name!r} is also used by {names[name]}")
            continue
        names[name] = where
        checkpoint = repo / ckpt_rel
        weights: dict[str, Any] = {
            "file": f"model_zoo/{checkpoint.name}" if copy_weights else str(checkpoint),
            "sha256": sha256_of(checkpoint)}
        for opt in ("key", "strip_prefix"):
            if opt in team:
                weights[opt] = str(team[opt])
        if "rename" in team:
            weights["rename"] = [list(pair) for pair in team["rename"]]
        spec = {"name": name, "track": "esr", "task": "sr", "scale": team.get("scale", default_scale),
                "data_range": team["data_range"],
                "description": f"NTIRE repository import: team {team_id:02d}, {model_rel} ({repo.name})",
                "model": {"factory": f"{model_rel}:{team['class']}", "kwargs": dict(team.get("kwargs", {}))},
                "weights": weights}
        try:
            EntrySpec.from_dict(spec, where)
        except (EntryError, TypeError, ValueError) as exc:
            problems.append(str(exc))
            continue
        plans.append(TeamImport(team_id, name, spec, _code_files(repo, model_rel), checkpoint))
    if problems:
        raise LegacyError("cannot import the mapping:\n" + "\n".join(f"- {p}" for p in problems))
    return plans


def import_ntire(repo_dir: str | Path, map_path: str | Path, out_dir: str | Path, *, copy_weights: bool = False,
                 force: bool = False) -> list[Path]:
    """Write one entry folder per team of the mapping file into ``out_dir``; returns the folders."""
    mapping = tomlw.load_file(map_path, LegacyError, "mapping file")
    plans = plan_import(repo_dir, mapping, copy_weights=copy_weights)
    out = Path(out_dir)
    clashes = [p.name for p in plans if (out / p.name).exists()]
    if clashes and not force:
        raise LegacyError(f"{out}: already holds {', '.join(clashes)} (use --force to replace them)")
    repo = Path(repo_dir).resolve()
    folders = []
    for plan in plans:
        folder = out / plan.name
        if folder.exists():
            shutil.rmtree(folder)
        for rel in plan.code:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / rel, target)
        if copy_weights:
            target = folder / plan.spec["weights"]["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plan.checkpoint, target)
        (folder / SPEC_FILE).write_text(tomlw.dumps(plan.spec), encoding="utf-8")
        folders.append(folder)
    return folders
