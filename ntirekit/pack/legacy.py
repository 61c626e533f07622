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
    # optional: name = "team04_rlfn", key = "params" (or ["params_ema", "params"]: the first present),
    #           strip_prefix = "", rename = [["old.", "new."]], scale = 4,
    #           strict = false (load as the harness does, listing missing/unexpected keys), tile = 256, note = "..."

Without a mapping file the map is derived from the repository's ``test_demo.py`` (:mod:`ntirekit.pack.importer.demo`); a
mapping file given as well overrides it team by team (a table with ``file`` replaces the derived one, a table without
it changes only the keys it states). Team ids are integers; negative ones are the baselines (``baseline1_<file>``).

Each team becomes ``OUT/<name>/`` holding ``entry.toml`` and the model code copied under its repository path
(``models/team04_rlfn.py``, plus every repository module it imports, transitively, see :mod:`ntirekit.pack.importer.code`;
for a package, every ``.py`` file of its folder): the NTIRE layout inside an entry folder,
which the kit can evaluate, rank and pack. The checkpoint is copied to ``model_zoo/`` (its sha256 pinned), so an
entry never names a path outside its folder; a file (code or checkpoint) that resolves outside the repository (a link)
is never copied: its team is skipped with that reason, as is a team whose code nests too deeply to be read. The
default name is the model file's (or package folder's) name when it
follows ``teamXX_Name``, else ``teamXX_<file name>``.

Every problem of the mapping (unknown keys, paths outside the repository, bad data ranges, duplicate names) is
collected and raised together in one :class:`LegacyError`; nothing is written unless the whole mapping is valid. A team
whose model file or checkpoint is absent is skipped with its reason and never blocks the others.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ntirekit.core.errors import EntryError
from ntirekit.core.paths import resolves_inside
from ntirekit.core.trust import mark_untrusted
from ntirekit.core.spec import SPEC_FILE, EntrySpec
from ntirekit.core import tomlw
from ntirekit.pack.importer.code import code_files
from ntirekit.pack.formats import TEAM_NAME, inside_path
from ntirekit.core.weights import sha256_of
from ntirekit.pack.importer.demo import DEMO_FILE, derive_map

TEAM_KEYS = frozenset({"file", "class", "kwargs", "checkpoint", "data_range", "name", "key", "strip_prefix", "rename",
                       "scale", "strict", "tile", "note"})


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


def _default_name(team: int, model_rel: str) -> str:
    """The model file's (or package folder's) ``teamXX_Name`` when XX is this team, else ``teamXX_<name>``, or
    ``baselineN_<name>`` for a negative (baseline) id."""
    path = Path(model_rel)
    candidates = [path.stem] + ([path.parent.name] if path.parent.name != "models" else [])
    for candidate in reversed(candidates):
        match = TEAM_NAME.match(candidate)
        if match and int(match.group(1)) == team:
            return candidate
    match = next((m for m in map(TEAM_NAME.match, reversed(candidates)) if m), None)
    stem = match.group(2) if match else path.stem
    return f"baseline{-team}_{stem}" if team < 0 else f"team{team:02d}_{stem}"


@dataclass
class ImportPlan:
    """The resolved teams of a mapping and, per skipped team id, why it is skipped."""

    teams: list[TeamImport]
    skipped: dict[int, str]


def plan_import(repo_dir: str | Path, mapping: Mapping[str, Any]) -> list[TeamImport]:
    """Resolve and validate every team of ``mapping``; :class:`LegacyError` lists every problem found (teams with
    absent files are left out: :func:`plan_teams` also says which and why)."""
    return plan_teams(repo_dir, mapping).teams


def plan_teams(repo_dir: str | Path, mapping: Mapping[str, Any]) -> ImportPlan:
    """Resolve every team of ``mapping``: teams whose files are absent are skipped with their reason; every other
    problem is collected into one :class:`LegacyError`."""
    repo = Path(repo_dir).resolve()
    problems: list[str] = []
    if not repo.is_dir():
        raise LegacyError(f"{repo}: not a folder")
    teams = mapping.get("teams")
    if not isinstance(teams, Mapping) or not teams:
        raise LegacyError("the mapping needs a [teams.NN] table per team")
    unknown_top = set(mapping) - {"teams", "scale", "skipped"}
    if unknown_top:
        problems.append(f"unknown top-level keys {sorted(unknown_top)}")
    default_scale = mapping.get("scale", 4)
    plans: list[TeamImport] = []
    skipped: dict[int, str] = {}
    names: dict[str, str] = {}
    for key, team in teams.items():
        where = f"[teams.{key}]"
        try:
            team_id = int(key)
        except ValueError:
            problems.append(f"{where}: the team id must be a number (negative for a baseline)")
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
        if ckpt_rel is None:
            problems.append(f"{where}: checkpoint {team['checkpoint']!r} must be a path inside the repository")
            ok = False
        if not ok:
            continue
        absent = [f"{what} {rel} is absent" for what, rel in (("model file", model_rel), ("checkpoint", ckpt_rel))
                  if not (repo / str(rel)).is_file()]
        if absent:
            skipped[team_id] = " and ".join(absent)
            continue
        try:
            code = code_files(repo, model_rel)
        except RecursionError:
            skipped[team_id] = f"{model_rel} nests too deeply to be read"
            continue
        outside = [rel for rel in (*code, ckpt_rel)
                   if not (resolves_inside(repo, repo / str(rel)) and (repo / str(rel)).is_file())]
        if outside:
            skipped[team_id] = f"{outside[0]} leads outside the repository (a link); never copied"
            continue
        assert model_rel is not None and ckpt_rel is not None
        name = str(team.get("name") or _default_name(team_id, model_rel))
        if name in names:
            problems.append(f"{where}: entry name {name!r} is also used by {names[name]}")
            continue
        names[name] = where
        checkpoint = repo / ckpt_rel
        weights: dict[str, Any] = {"file": f"model_zoo/{checkpoint.name}", "sha256": sha256_of(checkpoint)}
        if "key" in team:       # "a.b", or a list: the first present (a conditional unwrap in test_demo.py)
            key = team["key"]
            weights["key"] = [str(k) for k in key] if isinstance(key, (list, tuple)) else str(key)
        if "strip_prefix" in team:
            weights["strip_prefix"] = str(team["strip_prefix"])
        if "rename" in team:
            weights["rename"] = [list(pair) for pair in team["rename"]]
        if team.get("strict", True) is not True:
            weights["strict"] = team["strict"]
        note = f"; {team['note']}" if team.get("note") else ""
        spec = {"name": name, "track": "esr", "task": "sr", "scale": team.get("scale", default_scale),
                "data_range": team["data_range"],
                "description": f"NTIRE repository import: team {team_id:02d}, {model_rel} ({repo.name}){note}",
                "model": {"factory": f"{model_rel}:{team['class']}", "kwargs": dict(team.get("kwargs", {}))},
                "weights": weights, **({"tile": team["tile"]} if team.get("tile") else {})}
        try:
            EntrySpec.from_dict(spec, where)
        except (EntryError, TypeError, ValueError) as exc:
            problems.append(str(exc))
            continue
        plans.append(TeamImport(team_id, name, spec, code, checkpoint))
    if problems:
        raise LegacyError("cannot import the mapping:\n" + "\n".join(f"- {p}" for p in problems))
    return ImportPlan(plans, skipped)


def merge_maps(derived: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``derived`` with ``override``'s teams laid over it team by team: a team table stating ``file`` replaces the
    derived one, one without it changes only the keys it states; top-level keys of ``override`` win."""
    teams = {str(k): dict(v) for k, v in dict(derived.get("teams", {})).items()}
    for key, table in dict(override.get("teams", {})).items():
        key = str(int(key)) if str(key).lstrip("-").isdigit() else str(key)
        if isinstance(table, Mapping) and "file" not in table and key in teams:
            teams[key] = {**teams[key], **table}
        else:
            teams[key] = table
    merged = {**dict(derived), **{k: v for k, v in override.items() if k != "teams"}, "teams": teams}
    skipped = {k: v for k, v in dict(merged.get("skipped", {})).items() if k not in teams}
    merged.pop("skipped", None)
    if skipped:
        merged["skipped"] = skipped
    return merged


def repository_map(repo_dir: str | Path, map_path: str | Path | None = None) -> dict[str, Any]:
    """The mapping of a repository: derived from its ``test_demo.py`` (teams it cannot derive under ``skipped``),
    overridden by the mapping file ``map_path`` when given; with a file but no ``test_demo.py``, the file alone."""
    override = tomlw.load_file(map_path, LegacyError, "mapping file") if map_path is not None else {}
    if map_path is not None and not (Path(repo_dir) / DEMO_FILE).is_file():
        return override
    try:
        derived = derive_map(repo_dir)
    except ValueError as exc:
        if map_path is None:
            raise LegacyError(str(exc)) from None
        return override
    base = {**derived.mapping(), "skipped": {str(k): v for k, v in derived.skipped.items()}}
    return merge_maps(base, override) if override else base


@dataclass
class ImportOutcome:
    """What :func:`import_repository` did: the entry folders written, the plans, and the skipped teams."""

    folders: list[Path]
    teams: list[TeamImport]
    skipped: dict[int, str]


def import_repository(repo_dir: str | Path, out_dir: str | Path, *, map_path: str | Path | None = None,
                      write_map: str | Path | None = None,
                      force: bool = False) -> ImportOutcome:
    """Write one entry folder per importable team into ``out_dir`` (see :func:`repository_map` for the map;
    ``write_map`` also saves the map used, for review and as a later ``map_path``)."""
    mapping = repository_map(repo_dir, map_path)
    if write_map is not None:
        Path(write_map).parent.mkdir(parents=True, exist_ok=True)
        Path(write_map).write_text(tomlw.dumps(mapping), encoding="utf-8")
    skipped = {int(k): str(v) for k, v in dict(mapping.get("skipped", {})).items()}
    plan = plan_teams(repo_dir, {k: v for k, v in mapping.items() if k != "skipped"})
    skipped.update(plan.skipped)
    folders = _write(repo_dir, plan.teams, out_dir, force=force)
    if folders:
        mark_untrusted(out_dir)           # teams' code: run in the sandbox only, wherever the folder is used from
    return ImportOutcome(folders, plan.teams, dict(sorted(skipped.items())))


def import_ntire(repo_dir: str | Path, map_path: str | Path | None, out_dir: str | Path, *,
                 force: bool = False) -> list[Path]:
    """Write one entry folder per team into ``out_dir`` (``map_path`` None: the map derived from ``test_demo.py``);
    returns the folders."""
    return import_repository(repo_dir, out_dir, map_path=map_path, force=force).folders


def _write(repo_dir: str | Path, plans: list[TeamImport], out_dir: str | Path, *, force: bool) -> list[Path]:
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
            shutil.copyfile((repo / rel).resolve(), target)
        target = folder / plan.spec["weights"]["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(plan.checkpoint).resolve(), target)
        (folder / SPEC_FILE).write_text(tomlw.dumps(plan.spec), encoding="utf-8")
        folders.append(folder)
    return folders
