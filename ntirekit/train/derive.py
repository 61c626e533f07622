"""Derived entries: write an entry folder from another entry plus new model arguments and a state dict.

``ntirekit reparam`` (deploy form), ``ntirekit prune`` (pruned widths) and ``ntirekit train``/``finetune`` (trained
weights) all end the same way: a folder a team could submit, holding

- the source entry's model code (every ``*.py`` file of its folder, sub-folders included, caches excluded), made
  self-contained: kit code it imports (``from ntirekit.nn.blocks import RLFN``) is written into the file
  (:func:`ntirekit.train.bundle.make_self_contained`), so the folder runs where ``ntirekit`` is not installed (the NTIRE
  harness); where that cannot be done a warning says why and the import is left as it was;
- ``<name>.pth``: a plain ``{name: tensor}`` state dict (``torch.save``), loadable with ``weights_only=True``;
- ``entry.toml``: the source spec with a new ``name``/``description``, the model ``kwargs`` updated, ``[weights]``
  naming the new file with its sha256 (no URL: the file lives in the folder), and no ``[published]`` figures (they
  belonged to the source).

The folder is verified before this returns: discovered on its own and loaded with ``strict=True``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from ntirekit.core import tomlw
from ntirekit.core.errors import EntryError
from ntirekit.core.registry import discover
from ntirekit.core.spec import Entry, thaw
from ntirekit.core.weights import atomic_torch_save, sha256_of
from ntirekit.nn.rep import is_reparameterized, reparameterize_model
from ntirekit.train.bundle import BundleError, make_self_contained

__all__ = ["write_entry_folder", "save_state_dict", "factory_accepts", "reparameterize_entry"]


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Save a plain CPU state dict (contiguous copies) atomically (:func:`ntirekit.core.weights.atomic_torch_save`)."""
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return atomic_torch_save(plain, path)


def _copy_code(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)


def write_entry_folder(source: Entry, out_dir: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], *,
                       name: str, description: str, kwargs: Mapping[str, Any] | None = None,
                       factory: str | None = None, extra_files: Mapping[str, str] | None = None,
                       overwrite: bool = False, origin: str = "") -> Entry:
    """Write ``out_dir`` as a new entry derived from ``source`` (see the module docstring) and return it, loaded-checked.

    ``kwargs`` replaces individual model arguments; ``factory`` replaces the factory (``file.py:Name``); a factory
    that is a kit module (a baseline's ``ntirekit.models.rlfn:RLFN``) becomes a ``model.py`` importing it, which
    :func:`~ntirekit.train.bundle.make_self_contained` then fills with the network's code;
    ``extra_files`` maps file names to text written beside the code (e.g. a README or a generated model file);
    ``origin`` says what the weights are (``trained (50 steps)``: ``[weights].origin``, the entry's weights label).
    An existing non-empty ``out_dir`` is an error unless ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EntryError(f"{out} exists and is not empty (use --force to overwrite)")
    if out.resolve() == source.folder:
        raise EntryError(f"{out} is the source entry's own folder")
    out.mkdir(parents=True, exist_ok=True)
    _copy_code(source.folder, out)
    factory = factory or source.spec.factory
    files = dict(extra_files or {})
    if not factory.split(":", 1)[0].endswith(".py"):      # a kit network (baselines): written out as model.py
        module, attr = factory.split(":", 1)
        files.setdefault("model.py", f'"""{name}: the network {attr} of {module}, written into this file so that '
                                     f'the folder runs without ntirekit."""\n\nfrom {module} import {attr}\n')
        factory = f"model.py:{attr}"
    for file_name, text in files.items():
        (out / file_name).write_text(text, encoding="utf-8")
    try:
        make_self_contained(out)
    except BundleError as exc:
        warnings.warn(f"{name}: the model code still imports ntirekit ({exc}); it will not run without the kit",
                      stacklevel=2)
    weights_file = f"{name}.pth"
    save_state_dict(state_dict, out / weights_file)

    spec = source.spec.to_dict()
    spec.pop("published", None)
    spec["name"] = name
    spec["description"] = description
    spec["model"] = {"factory": factory,
                     "kwargs": {**thaw(spec["model"].get("kwargs", {})), **dict(kwargs or {})}}
    spec["weights"] = {"file": weights_file, "sha256": sha256_of(out / weights_file),
                       **({"origin": origin} if origin else {})}
    tmp = out / ".entry.toml.tmp"
    tmp.write_text(tomlw.dumps(spec), encoding="utf-8")
    os.replace(tmp, out / "entry.toml")

    entry = discover([out], include_defaults=False)[name]
    entry.load(pretrained=True)           # strict load: raises if the folder is inconsistent
    return entry


# ---------------------------------------------------------------------------------------------------------------------
# reparameterization of a whole entry

def factory_accepts(entry: Entry, argument: str) -> bool:
    """Whether the entry's factory takes the keyword ``argument`` (or ``**kwargs``)."""
    import inspect

    factory = getattr(entry.module(), entry.spec.factory.split(":", 1)[1])
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return argument in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def check_input(entry: Entry, shape: tuple[int, int, int, int] = (1, 3, 29, 37), seed: int = 0,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A fixed random input in the entry's data range (odd, non-square: borders and both parities are exercised)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype) * entry.spec.data_range


def reparameterize_entry(entry: Entry, out_dir: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                         name: str | None = None, overwrite: bool = False) -> tuple[Entry, float]:
    """Write the deploy form of ``entry`` as an entry folder; returns it and the float64 max |training - deploy|.

    The entry's factory must take ``deploy`` (``deploy=True`` builds the merged form); the deploy entry sets it in its
    kwargs, and its weights are the reparameterized state dict (strict load checked).
    """
    import copy

    if not factory_accepts(entry, "deploy"):
        raise EntryError(f"{entry.name}: its factory {entry.spec.factory} has no 'deploy' argument, so no deploy form "
                         "can be built from its spec")
    pretrained = entry.spec.weights is not None or weights is not None
    model = entry.load(weights, pretrained=pretrained)
    train64 = copy.deepcopy(model).double()            # equivalence checked on float64 copies of both forms
    reparameterize_model(model)
    if not is_reparameterized(model):
        raise EntryError(f"{entry.name}: blocks remain in training form after reparameterization")
    x = check_input(entry)
    with torch.no_grad():
        diff = float((train64(x) - reparameterize_model(copy.deepcopy(train64))(x)).abs().max())
    name = name or f"{entry.name}_deploy"
    description = (f"Deploy form of {entry.name} (every re-parameterizable block merged into one plain conv by "
                   f"`ntirekit reparam`; weights: {'pretrained' if pretrained else 'random initialisation'}).")
    derived = write_entry_folder(entry, out_dir, model.state_dict(), name=name, description=description,
                                 kwargs={"deploy": True}, overwrite=overwrite)
    return derived, diff
