"""Entries: the one interface behind which every baseline and team submission sits.

An entry is a folder holding ``entry.toml`` (a small declarative spec) and, for a team entry, the model code it names;
a baseline names a network of :mod:`ntirekit.models` instead. The kit builds the model from the spec, resolves and
loads its weights strictly, and measures it the same way as every other entry. Finding entries is
:mod:`ntirekit.core.registry`'s job.

``entry.toml`` layout (all keys but ``name``, ``track``, ``task`` and ``[model].factory`` are optional)::

    name = "rlfn_ntire"            # unique across all discovered entries
    track = "esr"                  # esr | vqe
    task = "sr"                    # sr | qe
    scale = 4                      # output size / input size (1 for qe)
    data_range = 255.0             # the model sees pixels in [0, data_range]
    description = "..."
    frames = 1                     # video entries: >1 means the model takes (N, T, C, H, W)
    tile = 0                       # run on LR tiles of this size (pixels) unless the caller says otherwise; 0 = whole

    [model]
    factory = "model.py:RLFN"      # file inside the folder : class or function
    # factory = "ntirekit.models.rlfn:RLFN"   # or an importable module : class or function (baselines)
    kwargs = { feature_channels = 46 }

    [input]                        # the input contract (see InputContract); omitted keys take its defaults
    min_size = 256                 # smallest side in pixels the model accepts
    multiple = 4                   # sides must be multiples of this (callers pad, then crop back)

    [weights]                      # omitted: the entry has no pretrained weights
    file = "rlfn_ntire_x4.pth"     # file name looked up in local folders and the cache
    url = "https://.../rlfn_ntire_x4.pth"   # upstream, pinned to a commit
    sha256 = "3c9b..."
    key = ""                       # nested key holding the state dict ("a.b": nested; "" = detect params/net/...)
    # key = ["state_dict", "params_ema", "params"]   # or: the first of these present, else the top level
    origin = "trained (50 steps)"  # what the weights are, when the kit made them (train/finetune write it)
    strip_prefix = ""              # stripped from every key after "module."
    rename = [["fea_conv.", "conv_1."]]     # prefix renames for other upstream key layouts
    strict = true                  # false: load as the upstream harness does (strict=False), listing the
                                   # missing and unexpected keys in the record

    [published]                    # figures the entry must reproduce (units in the key names)
    params = 317218

Every consumer reads the input contract through :func:`input_contract`, never from attributes of the model.
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ntirekit.core.errors import DuplicateEntryError, EntryError
from ntirekit.core.team_code import call_factory, import_model_file
from ntirekit.core.tomlw import load_file
from ntirekit.core.trust import check_runnable
from ntirekit.core.weights import WeightsError, load_state_dict, resolve_weights

__all__ = ["TRACKS", "TASKS", "SPEC_FILE", "KIT_ROOT", "REPO_ROOT", "EntryError", "DuplicateEntryError",
           "WeightsSpec", "InputContract", "EntrySpec", "read_spec", "input_contract", "Entry", "thaw"]

TRACKS = ("esr", "vqe")
TASKS = ("sr", "qe")
SPEC_FILE = "entry.toml"
#: the installed ``ntirekit`` package folder (it holds ``baselines/``)
KIT_ROOT = Path(__file__).resolve().parents[1]
#: the folder above the package: the checkout for an editable install, ``site-packages`` for a wheel
REPO_ROOT = KIT_ROOT.parent


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain (JSON/TOML-serialisable) copy of a frozen spec value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _number(d: Mapping[str, Any], key: str, default: Any, kind: type, where: str) -> Any:
    """``d[key]`` as ``kind`` (int or float); a value of another type (a string, a fractional scale) is an error."""
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or kind is int and value != int(value):
        raise EntryError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def unknown_keys(where: str, table: str, given: Any, known: Any) -> EntryError:
    """The error for keys of ``table`` ("" for the top level) that are not ``known``, with a "did you mean" for each
    close to a known one (``data_rnage``: did you mean ``data_range``?)."""
    unknown = sorted(set(given) - set(known))
    hints = [f"{k!r}: did you mean {close[0]!r}?" for k in unknown
             for close in [difflib.get_close_matches(k, sorted(known), n=1, cutoff=0.6)] if close]
    what = f"unknown [{table}] keys" if table else "unknown keys"
    return EntryError(f"{where}: {what} {unknown}" + (f" ({'; '.join(hints)})" if hints else ""))


#: the ``[weights]`` keys
WEIGHTS_KEYS = ("file", "url", "sha256", "key", "strip_prefix", "rename", "strict", "origin")


def _weights_key(value: Any, where: str) -> str | tuple[str, ...]:
    """``[weights].key``: a string (``"a.b"`` nested), or a list of such strings: the first present (see
    :func:`ntirekit.core.weights.extract_state_dict`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise EntryError(f"{where}: [weights].key must be a string or a list of non-empty strings, got {value!r}")


@dataclass(frozen=True)
class WeightsSpec:
    """Where an entry's checkpoint comes from and how its keys map onto the model.

    ``key``: ``""`` (detect), ``"a.b"`` (that nesting), or a tuple of such keys: the first present in the checkpoint,
    else its top level, as a harness unwraps conditionally (``if "params_ema" in sd: ... elif "params" in sd: ...``).
    ``origin``: what the weights are when the kit made them (``trained (50 steps)``), shown instead of
    ``pretrained``."""

    file: str
    url: str = ""
    sha256: str = ""
    key: str | tuple[str, ...] = ""
    strip_prefix: str = ""
    rename: tuple[tuple[str, str], ...] = ()
    strict: bool = True
    origin: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "WeightsSpec":
        if set(d) - set(WEIGHTS_KEYS):
            raise unknown_keys(where, "weights", d, WEIGHTS_KEYS)
        if "file" not in d:
            raise EntryError(f"{where}: [weights] needs 'file'")
        file = str(d["file"])
        if Path(file).name in ("", ".", "..") or "\0" in file:
            raise EntryError(f"{where}: [weights].file must name a file, got {file!r}")
        if Path(file).is_absolute() or ".." in Path(file).parts or file.startswith("~"):
            raise EntryError(f"{where}: [weights].file must be a path inside the entry's folder (no absolute path, "
                             f"no '..'), got {file!r}")
        pairs = d.get("rename", ())
        if not isinstance(pairs, (list, tuple)) or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in pairs):
            raise EntryError(f"{where}: [weights].rename must be a list of [old, new] prefix pairs")
        rename = tuple((str(a), str(b)) for a, b in pairs)
        sha = str(d.get("sha256", "")).lower()
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise EntryError(f"{where}: [weights].sha256 is not 64 hex digits")
        return cls(file, str(d.get("url", "")), sha, _weights_key(d.get("key", ""), where),
                   str(d.get("strip_prefix", "")), rename, _flag(d, "strict", where, True, "[weights].strict"),
                   str(d.get("origin", "")))


@dataclass(frozen=True)
class InputContract:
    """What a model accepts: every caller pads an input up to it (and crops the output back), never guesses it.

    ``min_size``: smallest height and width in pixels (after padding); ``multiple``: height and width must be
    multiples of it; ``data_range``: pixels in ``[0, data_range]`` (1.0 or 255.0); ``frames``: clip length the model
    takes at once (1: images ``N×C×H×W``; >1: clips ``N×T×C×H×W``).
    """

    min_size: int = 1
    multiple: int = 1
    data_range: float = 1.0
    frames: int = 1

    def padded(self, h: int, w: int) -> tuple[int, int]:
        """The smallest ``(H, W)`` >= ``(h, w)`` that meets the contract."""
        def side(s: int) -> int:
            s = max(s, self.min_size)
            return -(-s // self.multiple) * self.multiple
        return side(h), side(w)


@dataclass(frozen=True)
class EntrySpec:
    """The frozen, validated content of one ``entry.toml``."""

    name: str
    track: str
    task: str
    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    scale: int = 4
    data_range: float = 1.0
    frames: int = 1
    tile: int = 0
    description: str = ""
    #: a reference method (bicubic): nothing to train, no weights, shown beside the entries and never ranked
    reference: bool = False
    weights: WeightsSpec | None = None
    published: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    min_size: int = 1
    multiple: int = 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "entry.toml") -> "EntrySpec":
        known = {"name", "track", "task", "scale", "data_range", "frames", "tile", "description", "reference",
                 "model", "weights", "published", "input"}
        if set(d) - known:
            raise unknown_keys(where, "", d, known)
        for key in ("name", "track", "task", "model"):
            if key not in d:
                raise EntryError(f"{where}: missing '{key}'")
        name = str(d["name"])
        if not name or any(c in name for c in "/\\ \t"):
            raise EntryError(f"{where}: bad entry name {name!r}")
        if d["track"] not in TRACKS:
            raise EntryError(f"{where}: track must be one of {TRACKS}, got {d['track']!r}")
        if d["task"] not in TASKS:
            raise EntryError(f"{where}: task must be one of {TASKS}, got {d['task']!r}")
        model = d["model"]
        for table in ("model", "weights", "published", "input"):
            if table in d and not isinstance(d[table], Mapping):
                raise EntryError(f"{where}: [{table}] must be a table")
        if set(model) - {"factory", "kwargs"}:
            raise unknown_keys(where, "model", model, ("factory", "kwargs"))
        if "factory" not in model or ":" not in str(model["factory"]):
            raise EntryError(f"{where}: [model].factory must look like 'model.py:ClassName' or 'package.module:Name'")
        if not isinstance(model.get("kwargs", {}), Mapping):
            raise EntryError(f"{where}: [model].kwargs must be a table")
        data_range = _number(d, "data_range", 1.0, float, where)
        if data_range not in (1.0, 255.0):
            raise EntryError(f"{where}: data_range must be 1.0 or 255.0, got {data_range}")
        scale = _number(d, "scale", 1 if d["task"] == "qe" else 4, int, where)
        frames = _number(d, "frames", 1, int, where)
        tile = _number(d, "tile", 0, int, where)
        if scale < 1 or frames < 1 or tile < 0:
            raise EntryError(f"{where}: scale and frames must be at least 1, tile at least 0")
        weights = WeightsSpec.from_dict(d["weights"], where) if "weights" in d else None
        contract = d.get("input", {})
        if set(contract) - {"min_size", "multiple"}:
            raise unknown_keys(where, "input", contract, ("min_size", "multiple"))
        min_size = _number(contract, "min_size", 1, int, where)
        multiple = _number(contract, "multiple", 1, int, where)
        if min_size < 1 or multiple < 1:
            raise EntryError(f"{where}: [input] min_size and multiple must be at least 1")
        return cls(name=name, track=str(d["track"]), task=str(d["task"]), factory=str(model["factory"]),
                   kwargs=_freeze(dict(model.get("kwargs", {}))), scale=scale, data_range=data_range,
                   frames=frames, tile=tile, description=str(d.get("description", "")),
                   reference=_flag(d, "reference", where),
                   weights=weights, published=_freeze(dict(d.get("published", {}))),
                   min_size=min_size, multiple=multiple)

    @property
    def input(self) -> InputContract:
        """The declared input contract (read it through :func:`input_contract`)."""
        return InputContract(self.min_size, self.multiple, self.data_range, self.frames)

    @property
    def factory_in_folder(self) -> bool:
        """Whether the factory is a file of the entry's folder (``model.py:Name``), not an importable module."""
        return self.factory.split(":", 1)[0].endswith(".py")

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain dict in ``entry.toml`` layout."""
        out: dict[str, Any] = {"name": self.name, "track": self.track, "task": self.task, "scale": self.scale,
                               "data_range": self.data_range, "frames": self.frames,
                               **({"tile": self.tile} if self.tile else {}), "description": self.description,
                               **({"reference": True} if self.reference else {}),
                               "model": {"factory": self.factory, "kwargs": thaw(self.kwargs)}}
        if self.weights is not None:
            w = self.weights
            out["weights"] = {"file": w.file, "url": w.url, "sha256": w.sha256,
                              "key": list(w.key) if isinstance(w.key, tuple) else w.key,
                              "strip_prefix": w.strip_prefix, "rename": [list(r) for r in w.rename],
                              **({} if w.strict else {"strict": False}), **({"origin": w.origin} if w.origin else {})}
        if self.published:
            out["published"] = thaw(self.published)
        if (self.min_size, self.multiple) != (1, 1):
            out["input"] = {"min_size": self.min_size, "multiple": self.multiple}
        return out


def _flag(d: Mapping[str, Any], key: str, where: str, default: bool = False, name: str | None = None) -> bool:
    """The boolean ``d[key]`` (``default`` when absent); anything else is an :class:`EntryError`."""
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise EntryError(f"{where}: {name or key} must be true or false, got {value!r}")
    return value


def read_spec(folder: Path) -> EntrySpec:
    """Parse and validate ``folder/entry.toml``."""
    path = Path(folder) / SPEC_FILE
    return EntrySpec.from_dict(load_file(path, EntryError, SPEC_FILE), str(path))


def input_contract(entry: "Entry | EntrySpec") -> InputContract:
    """The input contract an entry declares in its spec: the one place every consumer reads it from."""
    spec = entry.spec if isinstance(entry, Entry) else entry
    return spec.input


#: called with every model an entry builds (see :meth:`Entry.add_build_hook`)
BuildHook = Callable[["Entry", nn.Module], None]


class Entry:
    """One discovered entry: its spec, its folder, and the means to build and load its model."""

    def __init__(self, spec: EntrySpec, folder: Path):
        self.spec = spec
        self.folder = Path(folder).resolve()
        #: what the last build and load had to do: "build" (made on the CPU), "unwrapped", "missing", "unexpected"
        self.notes: dict[str, Any] = {}
        self._build_hooks: list[BuildHook] = []

    def add_build_hook(self, hook: BuildHook) -> None:
        """Call ``hook(entry, model)`` on every model this entry builds from now on (e.g. the isolation layer's
        NaN/inf guard); only this :class:`Entry` object is affected."""
        self._build_hooks.append(hook)

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.spec.track}/{self.spec.task}, x{self.spec.scale}, {self.folder})"

    def module(self) -> ModuleType:
        """The module holding the factory: a kit module by import, or the entry's model file, imported once per
        process as shipped, in the folder's own module namespace (see :mod:`ntirekit.core.team_code`: relative
        imports and the folder's ``models``/helper modules resolve, and two entries' modules of one name never
        clash)."""
        check_runnable(self.name, self.folder)
        file_name = self.spec.factory.split(":", 1)[0]
        if not self.spec.factory_in_folder:
            try:
                return importlib.import_module(file_name)
            except ImportError as exc:
                raise EntryError(f"{self.name}: factory module {file_name!r} cannot be imported: {exc}") from exc
        return import_model_file(self.name, self.folder, file_name)

    def build(self, **overrides: Any) -> nn.Module:
        """The model with freshly initialised weights (``kwargs`` from the spec, updated by ``overrides``); what the
        build had to do (a CUDA constructor made on the CPU) is in :attr:`notes`."""
        attr = self.spec.factory.split(":", 1)[1]
        factory = getattr(self.module(), attr, None)
        if factory is None:
            raise EntryError(f"{self.name}: {self.spec.factory} not found")
        model = call_factory(self.name, self.folder, factory, {**thaw(self.spec.kwargs), **overrides}, self.notes)
        for hook in self._build_hooks:
            hook(self, model)
        return model

    def weights_path(self, explicit: str | os.PathLike | None = None, download: bool = True) -> Path | None:
        """The verified checkpoint file, or None for an entry without weights (see :mod:`ntirekit.core.weights`)."""
        if self.spec.weights is None and explicit is None:
            return None
        return resolve_weights(self, explicit=explicit, download=download)

    def has_weights(self) -> bool:
        """Whether the checkpoint is available locally (never downloads)."""
        if self.spec.weights is None:
            return False
        try:
            return self.weights_path(download=False) is not None
        except WeightsError:
            return False

    def load(self, weights: str | os.PathLike | None = None, *, pretrained: bool = True,
             device: str | torch.device = "cpu") -> nn.Module:
        """The model in eval mode on ``device``, with its weights loaded strictly when it has any.

        ``pretrained=False`` skips the weights (random initialisation: counting and timing need no weights).
        """
        model = self.build()
        if pretrained:
            path = self.weights_path(weights)
            if path is not None:
                load_state_dict(self, model, path, self.notes)
        return model.eval().to(device)
