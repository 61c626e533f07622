"""Run a team's code as it was shipped: package-relative imports, the repository's own ``models``/``utils`` packages
and helper modules, each entry folder in its own module namespace.

The official harness runs ``test_demo.py`` from the repository root, so a team's code sees the repository's top-level
modules (``models``, ``utils``, a ``basicblock.py``...) as importable names. An entry folder keeps that layout
(``models/team04_rlfn.py``), and :func:`import_model_file` imports the model file by its dotted path
(``models.team04_rlfn``) with the folder first on ``sys.path``, so ``from .block import X`` and
``from models.basicblock import Y`` resolve exactly as in the repository.

Two entries may both ship ``models/block.py``. While one entry's code runs, the names its folder provides are swapped
into ``sys.modules`` and taken out again afterwards (kept per folder in :class:`FolderModules`), so neither sees the
other's module of the same name. Standard-library names and the kit's own dependencies are never shadowed.

Failures become one line: a missing third-party module is "needs X (pip install X)", a constructor that wants CUDA on
a machine without it is rebuilt with every CUDA placement mapped to the CPU (safe: it only changes where tensors live)
or, when that still fails, "needs CUDA".
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from ntirekit.core.errors import EntryError

#: top-level names an entry folder may never shadow (the kit and what it runs on)
PROTECTED = frozenset(sys.stdlib_module_names) | {"torch", "numpy", "ntirekit", "click", "fvcore", "tabulate"}

#: import name -> PyPI distribution, where they differ
PIP_NAMES = {"cv2": "opencv-python", "PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn",
             "yaml": "pyyaml", "mmcv": "mmcv", "mamba_ssm": "mamba-ssm", "thop": "thop", "natten": "natten",
             "basicsr": "basicsr", "einops": "einops", "timm": "timm", "torchvision": "torchvision"}

#: phrases of torch's errors when code asks for a GPU that is not there
CUDA_PHRASES = ("not compiled with cuda", "cuda driver", "nvidia driver", "no cuda gpus", "cuda is not available",
                "cuda error", "on a cuda device", "is_available() is false")

_LOCK = threading.RLock()


class MissingDependency(EntryError):
    """The team's code imports a third-party module this environment cannot load."""


class NeedsCuda(EntryError):
    """The team's code cannot be built or run without a CUDA device."""


def _identifier_parts(rel: str) -> list[str] | None:
    parts = Path(rel).with_suffix("").parts
    return list(parts) if parts and all(p.isidentifier() for p in parts) else None


class FolderModules:
    """The modules one entry folder's code imported, under their own names, outside ``sys.modules`` when idle."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        self.modules: dict[str, ModuleType] = {}
        self.private = f"ntirekit_entry_{hashlib.sha1(str(self.folder).encode()).hexdigest()[:10]}"

    def provided(self) -> set[str]:
        """Top-level module names the folder provides (``models``, ``utils``, ``model``...)."""
        names = {p.stem if p.suffix == ".py" else p.name for p in self.folder.iterdir()
                 if (p.suffix == ".py" and p.is_file()) or (p.is_dir() and p.name != "__pycache__")}
        return {n for n in names if n.isidentifier()} - PROTECTED

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """While inside, the folder's modules are importable under their shipped names, and nobody else's are."""
        with _LOCK:
            names = self.provided()
            saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.partition(".")[0] in names}
            sys.modules.update(self.modules)
            sys.path.insert(0, str(self.folder))
            importlib.invalidate_caches()
            try:
                yield
            finally:
                sys.path.remove(str(self.folder))
                for key in [k for k in sys.modules if k.partition(".")[0] in names]:
                    self.modules[key] = sys.modules.pop(key)
                sys.modules.update(saved)


_FOLDERS: dict[Path, FolderModules] = {}


def folder_modules(folder: Path) -> FolderModules:
    """The (process-wide, one per folder) module namespace of an entry folder."""
    folder = Path(folder).resolve()
    with _LOCK:
        return _FOLDERS.setdefault(folder, FolderModules(folder))


def pip_hint(module: str) -> str:
    top = module.partition(".")[0]
    return f"{top} (pip install {PIP_NAMES.get(top, top.replace('_', '-'))})"


def _failing_package(exc: BaseException, folder: Path) -> str:
    """The installed top-level package whose own code raised ``exc`` ('' when the error is in the team's code)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if folder in path.parents:
            return ""
        if "site-packages" in path.parts:
            inside = path.parts[path.parts.index("site-packages") + 1:]
            if inside and inside[0].partition(".")[0] not in PROTECTED:
                return inside[0].partition(".")[0]
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def wants_cuda(exc: BaseException) -> bool:
    """Whether ``exc`` is torch refusing a CUDA placement (and CUDA is indeed absent)."""
    return not torch.cuda.is_available() and any(p in str(exc).lower() for p in CUDA_PHRASES)


def import_model_file(name: str, folder: Path, rel: str) -> ModuleType:
    """Import ``folder/rel`` as shipped (see the module docstring); one-line :class:`EntryError` on failure."""
    modules = folder_modules(folder)
    path = (modules.folder / rel).resolve()
    if modules.folder not in path.parents:
        raise EntryError(f"{name}: model file {rel!r} lies outside the entry folder")
    if not path.is_file():
        raise EntryError(f"{name}: model file {path} not found")
    parts = _identifier_parts(rel)
    dotted = ".".join(parts) if parts and parts[0] not in PROTECTED else f"{modules.private}_{path.stem}"
    store = sys.modules if dotted.startswith(modules.private) else modules.modules   # a private name never clashes
    if dotted in store:
        return store[dotted]
    with modules.active():
        try:
            if dotted.startswith(modules.private):
                spec = importlib.util.spec_from_file_location(dotted, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[dotted] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            sys.modules.pop(dotted, None)
            missing = exc.name or str(exc)
            if missing.partition(".")[0] in modules.provided():
                raise EntryError(f"{name}: imports {missing}, which the entry folder lacks") from None
            raise MissingDependency(f"{name} needs {pip_hint(missing)}") from None
        except Exception as exc:
            sys.modules.pop(dotted, None)
            package = _failing_package(exc, modules.folder)
            if package:
                raise MissingDependency(f"{name} needs a working {pip_hint(package)}: {_first_line(exc)}") from None
            raise EntryError(f"{name}: importing {path.name} failed: {_first_line(exc)}") from exc
    return module


class CudaToCpu(TorchFunctionMode):
    """Every CUDA placement (``.cuda()``, ``.to("cuda")``, ``device="cuda"``) made on the CPU instead."""

    @staticmethod
    def _cpu(value: Any) -> Any:
        if isinstance(value, torch.device) and value.type == "cuda" or isinstance(value, str) and \
                value.startswith("cuda"):
            return torch.device("cpu")
        return value

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = {k: self._cpu(v) if k == "device" else v for k, v in (kwargs or {}).items()}
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.to:
            args = tuple(self._cpu(a) for a in args)
        return func(*args, **kwargs)


def call_factory(name: str, folder: Path, factory: Callable[..., Any], kwargs: dict[str, Any],
                 notes: dict[str, Any]) -> Any:
    """``factory(**kwargs)`` with the folder's modules active; a constructor that wants CUDA where there is none is
    built again with :class:`CudaToCpu` and ``notes["build"]`` says so, or :class:`NeedsCuda` when that fails too."""
    modules = folder_modules(folder)
    label = f"{getattr(factory, '__name__', factory)}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    with modules.active():
        try:
            return factory(**kwargs)
        except Exception as exc:
            if not wants_cuda(exc):
                raise EntryError(f"{name}: building {label} failed: {_first_line(exc)}") from exc
            first = _first_line(exc)
        try:
            with CudaToCpu():
                model = factory(**kwargs)
        except Exception:
            raise NeedsCuda(f"{name} needs CUDA: its constructor fails on CPU ({first})") from None
    notes["build"] = "built on CPU: the constructor asks for CUDA, every CUDA placement was made on the CPU"
    return model
