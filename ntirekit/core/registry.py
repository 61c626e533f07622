"""Finding entries: the registry of entries by name, and where the kit looks for them.

Default roots, in order: the baselines shipped inside the package (``ntirekit/baselines``, so a wheel carries them),
the folders third-party packages register under the entry-point group :data:`ENTRY_POINT_GROUP`, ``./submissions``
of the working directory, and ``$NTIREKIT_ENTRIES`` (``os.pathsep``-separated). Each entry folder is taken once,
however many roots reach it; two different folders with one name are an error (timm's convention).

A package adds entries with, in its ``pyproject.toml``::

    [project.entry-points."ntirekit.entries"]
    mypkg = "mypkg.entries"        # a package (its folder is searched), or an object that is a path,
                                   # or a function returning a path or a list of paths
"""

from __future__ import annotations

import difflib
import os
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Mapping

from ntirekit.core.errors import DuplicateEntryError, EntryError
from ntirekit.core.names import entry_name_problem
from ntirekit.core.spec import KIT_ROOT, SPEC_FILE, Entry, read_spec
from ntirekit.core.text import one_line

#: the entry-point group through which installed packages add entry folders
ENTRY_POINT_GROUP = "ntirekit.entries"
#: the baselines shipped with the kit
BASELINES = KIT_ROOT / "baselines"


class Registry(Mapping[str, Entry]):
    """Entries by name, in discovery order."""

    def __init__(self, entries: Iterable[Entry] = ()):
        self._entries: dict[str, Entry] = {}
        #: one line per entry folder that discovery skipped (malformed entry.toml, invalid or clashing name)
        self.skipped: list[str] = []
        for entry in entries:
            self.add(entry)

    def add(self, entry: Entry) -> None:
        if entry.name in self._entries:
            other = self._entries[entry.name]
            raise DuplicateEntryError(f"entry name {entry.name!r} is used by both {other.folder} and {entry.folder}")
        self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> Entry:
        problem = entry_name_problem(name)
        if problem:
            raise EntryError(problem)
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise EntryError(f"no entry named {name!r} ({hint}known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def select(self, names: Iterable[str] = (), track: str | None = None) -> list[Entry]:
        """The named entries (in the given order), or every entry of ``track`` when no names are given."""
        names = list(names)
        if names:
            return [self[n] for n in names]
        return [e for e in self._entries.values() if track is None or e.spec.track == track]


def _paths_of(target: Any, where: str) -> list[Path]:
    """The folders an entry point's object stands for."""
    if isinstance(target, ModuleType):
        if not getattr(target, "__file__", None):
            raise EntryError(f"{where}: module {target.__name__} has no folder")
        return [Path(target.__file__).parent]
    if callable(target):
        target = target()
    if isinstance(target, (str, os.PathLike)):
        return [Path(target)]
    if isinstance(target, (list, tuple)) and all(isinstance(t, (str, os.PathLike)) for t in target):
        return [Path(t) for t in target]
    raise EntryError(f"{where}: an {ENTRY_POINT_GROUP} entry point must give a package, a path or a list of paths")


def entry_point_roots() -> list[Path]:
    """The folders installed packages register under :data:`ENTRY_POINT_GROUP` (their code is installed software:
    loading the entry point imports it; entry folders themselves are only read)."""
    roots: list[Path] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value}"
        try:
            target = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party package is one error line
            raise EntryError(f"{where}: cannot be loaded: {type(exc).__name__}: {exc}") from exc
        roots += _paths_of(target, where)
    return roots


def default_roots() -> list[Path]:
    """Folders searched when none are given (see the module docstring)."""
    roots = [BASELINES, *entry_point_roots(), Path.cwd() / "submissions"]
    roots += [Path(p) for p in os.environ.get("NTIREKIT_ENTRIES", "").split(os.pathsep) if p]
    return roots


def iter_entry_folders(root: Path) -> Iterator[Path]:
    """``root`` itself if it is an entry, else every folder below it holding an ``entry.toml`` (sorted)."""
    root = Path(root)
    if (root / SPEC_FILE).is_file():
        yield root
        return
    if root.is_dir():
        for spec_file in sorted(root.rglob(SPEC_FILE)):
            if not any(part.startswith(".") for part in spec_file.relative_to(root).parts):
                yield spec_file.parent


def discover(roots: Iterable[str | os.PathLike] | None = None, *, include_defaults: bool = True,
             report: Callable[[str], None] | None = None) -> Registry:
    """Find every entry under ``roots`` (plus the default roots unless ``include_defaults`` is False).

    A folder reached twice (through two roots, or a root inside another) is taken once. One bad entry never stops
    the others: a folder whose ``entry.toml`` is malformed, whose name breaks :mod:`ntirekit.core.names`, or whose
    name an earlier folder already took (the baselines come first, so a submission never shadows one) is skipped,
    with one line in :attr:`Registry.skipped` passed to ``report`` (default: written to stderr).
    """
    paths = [Path(r) for r in (roots or ())]
    if include_defaults:
        paths = default_roots() + paths
    registry = Registry()
    say = report or (lambda line: sys.stderr.write(f"ntirekit: {line}\n"))
    seen: set[Path] = set()
    for root in paths:
        if not root.exists():
            continue
        for folder in iter_entry_folders(root):
            folder = folder.resolve()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                spec = read_spec(folder)
                problem = entry_name_problem(spec.name)
                if problem:
                    raise EntryError(f"{folder / SPEC_FILE}: {problem}")
                registry.add(Entry(spec, folder))
            except (EntryError, ValueError, TypeError, KeyError, OSError) as exc:
                line = f"skipped {folder}: {one_line(exc)}"
                registry.skipped.append(line)
                say(line)
    return registry

