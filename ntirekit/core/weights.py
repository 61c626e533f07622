"""Weight resolution (explicit path, local folder, cache, verified download) and strict, safe loading.

Resolution order for an entry whose spec names ``[weights].file``:

1. an explicit path given by the caller (``--weights``);
2. ``$NTIREKIT_WEIGHTS/<file>`` (a local folder; several folders may be joined with ``os.pathsep``; a name that is
   not a folder is an error, not a reason to download);
3. the entry's own folder;
4. the user cache ``$NTIREKIT_CACHE`` or ``$XDG_CACHE_HOME/ntirekit/weights`` or ``~/.cache/ntirekit/weights``
   (files kept there by their name only: ``file``'s folders, if any, are dropped);
5. a download from the pinned upstream URL into the cache, kept only if its sha256 matches.

``file`` is a file name, or a path relative to those folders, or an absolute path.

Every file is checked against the spec's sha256 (a mismatch is an error, not a warning); an explicit path only when
its file name is the upstream one (another name is taken as a fine-tuned variant).
Loading always uses ``torch.load(..., weights_only=True)``, which reads both the legacy and the zip torch formats and
refuses pickles that would run code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from ntirekit.core.spec import Entry

from ntirekit.core.checkpoint import vet_checkpoint
from ntirekit.core.errors import EntryError
from ntirekit.core.paths import resolves_inside, user_file_mode

#: Nesting keys met in practice (BasicSR "params"/"params_ema", KAIR/others "net", "model_state_dict", "state_dict").
NESTING_KEYS = ("params_ema", "params", "net", "model_state_dict", "state_dict", "model")

#: key prefixes that training wrappers leave behind (DataParallel, GAN generators), stripped when the plain load fails
WRAPPER_PREFIXES = ("module.", "netG.")


class WeightsError(EntryError):
    """A checkpoint is missing, fails its hash, is not a plain state dict, or does not match the model."""


def cache_dir() -> Path:
    """The folder where downloaded checkpoints are kept."""
    if os.environ.get("NTIREKIT_CACHE"):
        return Path(os.environ["NTIREKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ntirekit" / "weights"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _verify(entry_name: str, path: Path, expected: str) -> Path:
    if expected:
        actual = sha256_of(path)
        if actual != expected:
            raise WeightsError(f"{entry_name}: {path} has sha256 {actual[:12]}…, expected {expected[:12]}…")
    return path


def _download(entry_name: str, url: str, dest: Path, expected: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        _verify(entry_name, Path(tmp), expected)
        os.replace(tmp, dest)
    except (OSError, ValueError) as exc:  # ValueError: a URL urllib cannot open ("unknown url type")
        raise WeightsError(f"{entry_name}: download of {url} failed: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve_weights(entry: "Entry", explicit: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The verified local checkpoint of ``entry`` (see the module docstring for the order)."""
    spec = entry.spec.weights
    expected = spec.sha256 if spec else ""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsError(f"{entry.name}: weights file {path} not found")
        # An explicit file may be a fine-tuned variant: only check the hash when the file name is the upstream one.
        return _verify(entry.name, path, expected if spec and path.name == spec.file else "")
    assert spec is not None
    folders = [Path(p) for p in os.environ.get("NTIREKIT_WEIGHTS", "").split(os.pathsep) if p]
    absent = [f for f in folders if not f.is_dir()]
    if absent:           # a mistyped (or relative, from another folder) path: say so rather than download
        raise WeightsError(f"{entry.name}: NTIREKIT_WEIGHTS names {absent[0]}, which is not a folder"
                           + ("" if absent[0].is_absolute() else f" (relative to {Path.cwd()})"))
    folders += [entry.folder]
    # ``file`` may be a path (relative to the folders, or absolute); the cache holds files by their name only, so that
    # no spec (an untrusted submission's included) can make a download write outside the cache.
    cached = cache_dir() / Path(spec.file).name
    for folder, candidate in [(folder, folder / spec.file) for folder in folders] + [(cached.parent, cached)]:
        if candidate.is_file():
            return _verify(entry.name, _confined(entry.name, candidate, folder), expected)
    folders.append(cache_dir())
    if download and spec.url:
        return _download(entry.name, spec.url, cached, expected)
    where = ", ".join(str(f) for f in folders)
    raise WeightsError(f"{entry.name}: weights {spec.file} not found in {where}"
                       + ("" if spec.url else " and no URL is given") + " (set NTIREKIT_WEIGHTS to a local folder)")


def _confined(entry_name: str, path: Path, folder: Path) -> Path:
    """``path`` resolved, when it stays inside ``folder`` (a link leaving the folder is refused)."""
    if not resolves_inside(folder, path):
        raise WeightsError(f"{entry_name}: weights {path} lead outside {folder} (a link); refused")
    return path.resolve()


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU, after :func:`ntirekit.core.checkpoint.vet_checkpoint`; a refused or
    broken file raises :class:`WeightsError`."""
    try:
        vet_checkpoint(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{what}: {path} is not a plain tensor checkpoint ({type(exc).__name__}: {first[:200]})") \
            from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` into ``path`` atomically (a temporary file beside it, then renamed over it), with the mode
    of any file the user writes (:func:`ntirekit.core.paths.user_file_mode`); returns ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _present(obj: Any, key: str) -> Any:
    """``obj[a][b]`` for the key ``"a.b"`` when every level is there, else None."""
    for part in key.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def extract_state_dict(obj: Any, key: str | Sequence[str] = "",
                       what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` dict inside a loaded checkpoint.

    ``key`` names the nesting explicitly ("a.b" for deeper levels); a sequence of such keys means "unwrap where
    present": the first that the checkpoint holds, else its top level (the harness's ``if "params_ema" in sd:
    sd = sd["params_ema"] elif "params" in sd: ...``); empty means: unwrap the first of :data:`NESTING_KEYS` found
    while the object is not yet a flat tensor dict.
    """
    if key and not isinstance(key, str):
        obj = next((inner for inner in (_present(obj, k) for k in key) if inner is not None), obj)
    elif key:
        for part in key.split("."):
            if not isinstance(obj, Mapping) or part not in obj:
                raise WeightsError(f"{what}: nested key {key!r} not found")
            obj = obj[part]
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        inner = next((obj[k] for k in NESTING_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        raise WeightsError(f"{what}: not a state dict of tensors")
    return dict(obj)


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def normalise_keys(state: Mapping[str, torch.Tensor], strip_prefix: str = "",
                   rename: tuple[tuple[str, str], ...] = ()) -> dict[str, torch.Tensor]:
    """Strip ``module.`` (DataParallel) and ``strip_prefix``, then apply the first matching prefix rename per key."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if strip_prefix and name.startswith(strip_prefix):
            name = name[len(strip_prefix):]
        for old, new in rename:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        out[name] = tensor
    return out


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor], limit: int = 3) -> str:
    """'' when ``state`` fits ``model`` exactly, else a short account of missing/unexpected/shape-mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label} {len(keys)}: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def _strip_wrappers(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """``state`` with every leading :data:`WRAPPER_PREFIXES` removed from its keys, and the prefixes removed."""
    out: dict[str, torch.Tensor] = {}
    stripped: set[str] = set()
    for name, tensor in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix):], True
                    stripped.add(prefix)
        out[name] = tensor
    return out, "+".join(sorted(stripped))


def _candidates(obj: Any, path: tuple[str, ...] = (), depth: int = 3) -> Iterator[tuple[tuple[str, ...], Mapping]]:
    """Every tensor dict reachable from ``obj`` through :data:`NESTING_KEYS`, with the keys that lead to it."""
    if not isinstance(obj, Mapping):
        return
    if _is_tensor_dict(obj):
        yield path, obj
        return
    if depth:
        for key in NESTING_KEYS:
            if key in obj:
                yield from _candidates(obj[key], path + (key,), depth - 1)


def _overlap(model_keys: set[str], state: Mapping[str, torch.Tensor]) -> int:
    return len(model_keys & set(state))


def fit_checkpoint(model: nn.Module, obj: Any, spec: Any, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict of the loaded checkpoint ``obj`` for ``model`` and what it took to get it.

    First the spec's own reading (``key``, ``strip_prefix``, ``rename``). When that does not fit exactly, every
    tensor dict under :data:`NESTING_KEYS` is tried with :data:`WRAPPER_PREFIXES` stripped, and the first that fits
    exactly is taken; the notes then say ``unwrapped`` (e.g. ``"['params'], stripped netG."``). With no exact fit,
    the reading sharing the most keys with the model is returned: the caller loads it non-strictly for a
    ``strict = false`` spec, or reports the mismatch."""
    key = spec.key if spec else ""
    strip, rename = (spec.strip_prefix, spec.rename) if spec else ("", ())
    plain: dict[str, torch.Tensor] | None = None
    plain_notes: dict[str, Any] = {}
    if key or not isinstance(obj, Mapping) or _is_tensor_dict(obj):     # stated nesting, or a flat dict
        raw = extract_state_dict(obj, key, what)
        plain = normalise_keys(raw, strip, rename)
        if strip != "module." and any(k.startswith("module.") for k in raw):
            plain_notes = {"unwrapped": f"{[key] if key else 'top level'}, stripped module."}
        if not describe_mismatch(model, plain):
            return plain, plain_notes
    readings: list[tuple[dict[str, torch.Tensor], dict[str, Any]]] = []
    for path, inner in _candidates(obj):
        state, stripped = _strip_wrappers(inner)
        state = normalise_keys(state, strip, rename)
        how = (f"{list(path)}" if path else "top level") + (f", stripped {stripped}" if stripped else "")
        if not describe_mismatch(model, state):
            return state, {"unwrapped": how}
        readings.append((state, {"unwrapped": how}))
    if plain is not None:
        readings.insert(0, (plain, plain_notes))
    if not readings:
        raise WeightsError(f"{what}: not a state dict of tensors")
    own = set(model.state_dict())
    return max(readings, key=lambda r: _overlap(own, r[0]))


def load_state_dict(entry: "Entry", model: nn.Module, path: str | os.PathLike,
                    notes: dict[str, Any] | None = None) -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` after the entry's key normalisation (see
    :func:`fit_checkpoint`): strictly, or, for a ``strict = false`` spec, non-strictly with the missing and
    unexpected keys put in ``notes`` (shape mismatches are errors either way)."""
    spec = entry.spec.weights
    what = f"{entry.name}: {Path(path).name}"
    state, how = fit_checkpoint(model, read_checkpoint(path, what), spec, what)
    if notes is not None:
        notes.update(how)
    problem = describe_mismatch(model, state)
    if problem and (spec is None or spec.strict or "shape" in problem):
        raise WeightsError(f"{what} does not fit the model: {problem}")
    if problem:
        own = model.state_dict()
        if notes is not None:
            notes["missing"] = [k for k in own if k not in state]
            notes["unexpected"] = [k for k in state if k not in own]
        model.load_state_dict(state, strict=False)
        return model
    model.load_state_dict(state, strict=True)
    return model
