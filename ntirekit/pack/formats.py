"""The three submission formats and the checks that apply to their content (names, checkpoints, images, readme).

Every check here reads files; none runs submitted code. A submission's content is a *tree*: ``{posix relative path:
local file}`` (the extracted files of a zip, or the files a packer is about to write).

``esr-code`` (ESR code submission), either layout:

- **entry folder**: ``entry.toml`` + the model file it names + the checkpoint named by ``[weights].file``;
- **NTIRE layout** (protocols §1.4): ``models/[TeamID]_[ModelName].py`` (2022 also allowed a package folder
  ``models/[TeamID]_[ModelName]/``) + ``model_zoo/[TeamID]_[ModelName].[pth|pt|ckpt]``. An ``entry.toml`` whose
  factory points into ``models/`` lets the kit build and evaluate it; without one the names and checkpoint are still
  checked.

The factsheet rule is one for both layouts (:data:`FACTSHEET_RULE`): a factsheet PDF and a zip of its LaTeX sources
(e.g. in ``factsheet/``); missing, a warning while developing and an error for the final submission (``final=True``:
``pack --final``, ``check --final``). Files that are there are checked either way (a real PDF, a zip holding a
``.tex``). Code that imports ``ntirekit`` is a warning: the plain NTIRE harness runs without the kit.

TeamID is ``team`` + the team number zero-padded to two digits (``team04_rlfn``). Checkpoints must be plain state
dicts: they are read with ``torch.load(weights_only=True)`` only, which refuses pickles that carry code.

``esr-results`` (SR images): PNG files at the archive root named like the **HR** images, the official harness's
convention (``test_demo.py`` saves ``os.path.splitext(basename(hr_path))`` + ``.png``): LR ``0801x4.png`` -> SR
``0801.png``; LSDIR ``0000001x4.png`` -> ``0000001.png``. A name that still carries the ``x4`` LR suffix is rejected.
Plus ``readme.txt`` with the four NTIRE fields (runtime per image).

``vqe-results`` (enhanced video frames, protocols §3.1): one folder per video (named like the input video, e.g. ``001``)
of PNG frames numbered from 1 as ``ffmpeg -i 001.mkv %3d.png`` writes them (``001.png``, ``002.png``, ...; an ``f``
prefix, ``f001.png``, is accepted), either every frame or, for validation, only every 10th frame (``010``, ``020``,
...). Plus ``readme.txt`` with the four NTIRE fields (runtime per frame).

With a dataset (``data``) the results formats are also checked for the exact set of names, the frame counts and the
output sizes (input size x scale).
"""

from __future__ import annotations

import math
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ntirekit.core.checkpoint import CheckpointRefused, vet_checkpoint
from ntirekit.core.names import entry_name_problem
from ntirekit.core.spec import EntryError, EntrySpec
from ntirekit.core.weights import WeightsError, extract_state_dict, read_checkpoint, sha256_of
from ntirekit.data.images import open_image_dataset
from ntirekit.data.video import read_clip
from ntirekit.pack.report import Report
from ntirekit.pack.safezip import nested_zip_names
from ntirekit.train.bundle import kit_imports

FORMATS = ("esr-code", "esr-results", "vqe-results")
MANIFEST = "MANIFEST.json"
README = "readme.txt"
#: written beside a ``readme.txt`` that ``ntirekit eval --save-frames`` made from its measurement (hidden: never
#: packed); ``pack`` reads it to tell a measured readme from a typed one
README_SOURCE = ".ntirekit-readme.json"
SPEC = "entry.toml"
CHECKPOINT_EXTS = (".pth", ".pt", ".ckpt")
#: File types a code submission may hold (code, spec, checkpoints, factsheet, notes, manifest).
CODE_EXTS = frozenset({".py", ".toml", *CHECKPOINT_EXTS, ".pdf", ".zip", ".txt", ".md", ".json", ".yml", ".yaml"})
#: (track, task) pairs a code submission may hold: ESR entries, and VQE entries (QE or x4 VSR form).
CODE_TRACKS = {("esr", "sr"), ("vqe", "qe"), ("vqe", "sr")}
TEAM_NAME = re.compile(r"^team(\d+)_([A-Za-z0-9][A-Za-z0-9_.\-]*)$")
LR_SUFFIX = re.compile(r"x\d+$")
FRAME_NAME = re.compile(r"^(f?)(\d{3,})\.png$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: how many names a summary problem spells out before "and N more"
EXAMPLES = 5

Tree = Mapping[str, Path]


# ---------------------------------------------------------------------------------------------------------- names

def team_name_problem(stem: str) -> str | None:
    """Why ``stem`` is not a valid ``[TeamID]_[ModelName]``, or None."""
    m = TEAM_NAME.match(stem)
    if not m:
        return f"{stem!r} is not named [TeamID]_[ModelName] with TeamID = 'team' + two digits (e.g. team04_rlfn)"
    if len(m.group(1)) != 2:
        fixed = f"team{int(m.group(1)):02d}_{m.group(2)}" if int(m.group(1)) < 100 else None
        return (f"team id in {stem!r} must be zero-padded to two digits"
                + (f" ({fixed})" if fixed else " (00-99)"))
    return None


def team_id(stem: str) -> int | None:
    m = TEAM_NAME.match(stem)
    return int(m.group(1)) if m else None


def sr_name(lr_or_hr_name: str) -> str:
    """The results file name of an image: its HR name with ``.png`` (``0801x4.png`` or ``0801`` -> ``0801.png``)."""
    stem = lr_or_hr_name.rsplit(".", 1)[0] if "." in lr_or_hr_name else lr_or_hr_name
    return LR_SUFFIX.sub("", stem) + ".png"


def _summarise(report: Report, code: str, items: Sequence[str], what: str, path: str = "") -> None:
    """One problem per item when there are few, else one problem naming the first few."""
    if not items:
        return
    if len(items) <= EXAMPLES:
        for item in items:
            report.error(code, what.format(item), path)
        return
    shown = "; ".join(what.format(i) for i in items[:EXAMPLES])
    report.error(code, f"{len(items)} cases: {shown}; and {len(items) - EXAMPLES} more", path)


# ---------------------------------------------------------------------------------------------------------- readme

@dataclass(frozen=True)
class ReadmeField:
    key: str
    labels: tuple[str, ...]      # accepted labels; the first is written
    kind: str                    # seconds | binary | text


def readme_fields(fmt: str) -> tuple[ReadmeField, ...]:
    """The four standard NTIRE readme fields; the runtime is per image (ESR) or per frame (VQE)."""
    unit = "frame" if fmt == "vqe-results" else "image"
    other = "image" if unit == "frame" else "frame"
    return (ReadmeField("runtime_s", (f"runtime per {unit} [s]", f"runtime per {other} [s]"), "seconds"),
            ReadmeField("cpu", ("CPU[1] / GPU[0]",), "binary"),
            ReadmeField("extra_data", ("Extra Data [1] / No Extra Data [0]",), "binary"),
            ReadmeField("description", ("Other description",), "text"))


def _label_key(label: str) -> str:
    return re.sub(r"\s+", "", label).lower()


def parse_readme(text: str, fmt: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``(values, problems)`` of a ``readme.txt``: every missing field and every bad value is a problem."""
    fields = readme_fields(fmt)
    by_label = {_label_key(label): f for f in fields for label in f.labels}
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        field = by_label.get(_label_key(label)) if sep else None
        if field is None or field.key in values:
            continue
        value = value.strip()
        if field.kind == "seconds":
            try:
                seconds = float(value)
            except ValueError:
                problems.append(("readme-value", f"'{field.labels[0]}' must be a number of seconds, got {value!r}"))
                continue
            if not math.isfinite(seconds) or seconds < 0:
                problems.append(("readme-value", f"'{field.labels[0]}' must be a finite number >= 0, got {value!r}"))
                continue
            values[field.key] = seconds
        elif field.kind == "binary":
            if value not in ("0", "1"):
                problems.append(("readme-value", f"'{field.labels[0]}' must be 0 or 1, got {value!r}"))
                continue
            values[field.key] = int(value)
        else:
            values[field.key] = value
    for field in fields:
        if field.key not in values and not any(field.labels[0] in msg for _, msg in problems):
            problems.append(("readme-field", f"readme.txt misses the field '{field.labels[0]} : ...'"))
    return values, problems


def render_readme(values: Mapping[str, Any], fmt: str) -> str:
    """The readme text in the standard NTIRE layout (fields missing from ``values`` are left out)."""
    lines = []
    for field in readme_fields(fmt):
        if field.key not in values:
            continue
        value = values[field.key]
        if field.kind == "seconds":
            value = f"{float(value):.6g}"
        lines.append(f"{field.labels[0]} : {value}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------- images

def png_info(path: str | Path) -> tuple[int, int, int, int]:
    """``(width, height, bit depth, colour type)`` from a PNG's header; ValueError when it is not a whole PNG.

    Only the signature, the IHDR chunk and the closing IEND chunk are read, so thousands of frames check quickly; a
    file cut short loses its IEND and is caught.
    """
    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] != PNG_SIGNATURE:
            raise ValueError("not a PNG file")
        if len(head) < 26 or head[12:16] != b"IHDR":
            raise ValueError("PNG header is missing its IHDR chunk")
        width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
        f.seek(0, 2)
        if f.tell() < 45:
            raise ValueError("PNG file is too short")
        f.seek(-12, 2)
        if f.read(12)[4:8] != b"IEND":
            raise ValueError("PNG file is truncated (no IEND chunk at its end)")
    if width == 0 or height == 0:
        raise ValueError("PNG has a zero size")
    return width, height, depth, colour


def _image_hw(path: Path) -> tuple[int, int]:
    try:
        from PIL import Image

        with Image.open(path) as img:
            w, h = img.size
            return h, w
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib/scikit-image
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError(f"{path}: cannot read image")
        return int(img.shape[0]), int(img.shape[1])


def _check_pngs(tree: Tree, paths: Iterable[str], report: Report) -> dict[str, tuple[int, int]]:
    """``{path: (height, width)}`` of the valid PNGs; bad files are problems, non-RGB-8 files warnings."""
    sizes: dict[str, tuple[int, int]] = {}
    odd: list[str] = []
    for rel in paths:
        try:
            w, h, depth, colour = png_info(tree[rel])
        except (ValueError, OSError) as exc:
            report.error("bad-image", str(exc), rel)
            continue
        sizes[rel] = (h, w)
        if depth != 8 or colour not in (2, 6):
            odd.append(rel)
    if odd:
        report.warn("image-mode", f"{len(odd)} PNG(s) are not 8-bit RGB (e.g. {odd[0]}); the evaluation reads them "
                                  "as 8-bit RGB")
    return sizes


# ---------------------------------------------------------------------------------------------------------- datasets

def expected_images(data: str | Path, scale: int) -> dict[str, tuple[int, int]]:
    """``{SR file name: (height, width)}`` the results of an image dataset must have (LR size x scale).

    Raises ``ntirekit.data.DataError`` for a dataset that cannot be opened.
    """
    dataset = open_image_dataset(data, scale=scale)
    out: dict[str, tuple[int, int]] = {}
    for i, source in enumerate(dataset.sources):
        if isinstance(source.lr, Path):
            h, w = _image_hw(source.lr)
            size = (h * scale, w * scale)
        elif isinstance(source.hr, Path):
            h, w = _image_hw(source.hr)
            size = (h - h % scale, w - w % scale)
        else:
            pair = dataset[i]
            size = (pair.lr.shape[0] * scale, pair.lr.shape[1] * scale)
        out[sr_name(source.name)] = size
    return out


def expected_videos(data: str | Path, scale: int) -> dict[str, tuple[int, tuple[int, int]]]:
    """``{video name: (frame count, (height, width) of the output)}`` for a folder of clips (one folder of frames
    per video, or raw ``.yuv`` files named with their size)."""
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of clips")
    out: dict[str, tuple[int, tuple[int, int]]] = {}
    for item in sorted(root.iterdir()):
        if item.name.startswith(".") or not (item.is_dir() or item.suffix.lower() == ".yuv"):
            continue
        clip = read_clip(item)
        w, h = clip.size
        out[item.stem if item.is_file() else item.name] = (len(clip), (h * scale, w * scale))
    if not out:
        raise ValueError(f"{root}: holds no clips (folders of PNG frames or .yuv files)")
    return out


# ---------------------------------------------------------------------------------------------------------- detection

def detect_format(paths: Iterable[str]) -> str | None:
    """Which format a set of paths looks like (None when it is none of them)."""
    paths = [p for p in paths if p != MANIFEST]
    if any(p == SPEC or p.endswith("/" + SPEC) for p in paths) or any(
            p.startswith(("models/", "model_zoo/")) or "/models/" in p or "/model_zoo/" in p for p in paths):
        return "esr-code"
    pngs = [p for p in paths if p.lower().endswith(".png")]
    if any(p.count("/") == 1 for p in pngs):
        return "vqe-results"
    if any("/" not in p for p in pngs):
        return "esr-results"
    return None


def code_root(paths: Iterable[str]) -> str:
    """The folder prefix of a code submission wrapped in one top folder (``team04_rlfn/entry.toml``), else ''."""
    paths = [p for p in paths if p != MANIFEST]
    if not paths or any("/" not in p for p in paths):
        return ""
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) != 1:
        return ""
    top = tops.pop()
    inner = [p.split("/", 1)[1] for p in paths]
    return top + "/" if SPEC in inner or any(p.startswith(("models/", "model_zoo/")) for p in inner) else ""


# ---------------------------------------------------------------------------------------------------------- checks

#: what a plain torch checkpoint's pickle may name (tensor rebuilders, storages, OrderedDict, bytes, containers)
_PLAIN_MODULES = ("torch", "collections", "_codecs", "numpy")
_PLAIN_BUILTINS = frozenset(f"{m}.{n}" for m in ("builtins", "__builtin__")
                            for n in ("set", "frozenset", "bytearray", "slice", "complex", "list", "dict", "tuple"))


def pickled_globals(path: Path) -> list[str]:
    """The ``module.name`` globals that the pickle(s) of a checkpoint refer to, read with :mod:`pickletools` (which
    only parses opcodes and never executes anything); ``[]`` when it cannot be parsed."""
    import io
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                blob = zf.read(name) if name else b""
        else:
            blob = Path(path).read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    stream = io.BytesIO(blob)
    while stream.tell() < len(blob):                # legacy torch files are several pickles in a row
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # noqa: BLE001 - raw tensor bytes after the pickles, or garbage
            break
    return found


def check_checkpoint(path: Path, rel: str, report: Report, key: str | tuple[str, ...] = "") -> dict[str, Any] | None:
    """Read a checkpoint the safe way only; a pickle with code, a broken file or a non-state-dict is a problem."""
    try:
        vet_checkpoint(path)
    except (CheckpointRefused, OSError) as exc:
        report.error("bad-checkpoint", f"refused before loading: {exc}", rel)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            obj = read_checkpoint(path, rel)
        except WeightsError as exc:
            foreign = [g for g in pickled_globals(path)
                       if g.split(".", 1)[0] not in _PLAIN_MODULES and g not in _PLAIN_BUILTINS]
            if foreign:
                report.error("unsafe-checkpoint", f"not a plain state dict: its pickle calls "
                                                  f"{', '.join(sorted(set(foreign))[:3])} on loading (code); the safe "
                                                  "loader (weights_only=True) refuses it. Save "
                                                  "torch.save(model.state_dict(), path)", rel)
            else:
                text = str(exc.__context__ or exc).strip().splitlines()
                detail = next((t for t in reversed(text) if t.strip() and not t.startswith("Check the doc")), "")
                report.error("bad-checkpoint", "the safe loader (weights_only=True) cannot read it as a plain tensor "
                                               f"checkpoint ({detail.strip()[:160]})", rel)
            return None
    try:
        return extract_state_dict(obj, key, rel)
    except WeightsError as exc:
        report.error("bad-checkpoint", f"holds no state dict of tensors ({str(exc).split(': ')[-1]})", rel)
        return None


#: The factsheet rule, as ``pack --help`` and the README state it.
FACTSHEET_RULE = ("a code submission carries a factsheet (a PDF and a zip of its LaTeX sources, e.g. in factsheet/), "
                  "in an entry folder and in the NTIRE models/ + model_zoo/ layout alike: without one, a warning "
                  "while developing and an error with --final")


def _check_kit_imports(tree: Tree, report: Report, broken: frozenset[str]) -> None:
    """Warn for each Python file that imports ``ntirekit``: such code cannot run in the plain NTIRE harness."""
    for rel in sorted(p for p in tree if p.endswith(".py") and p not in broken):
        try:
            found = kit_imports(tree[rel].read_text(encoding="utf-8", errors="replace"), rel)
        except (SyntaxError, ValueError):
            continue                                      # not Python the kit can read: loading it will say so
        if found:
            report.warn("imports-kit", f"imports {', '.join(found)}: this code cannot run in the plain NTIRE harness, "
                                       "where ntirekit is not installed (write the code it needs into the file)", rel)


def _check_factsheet(tree: Tree, report: Report, required: bool, present: set[str]) -> None:
    say = report.error if required else report.warn
    when = "" if required else " (required in the final submission: --final)"
    if not any(p.lower().endswith(".pdf") for p in present):
        say("missing-factsheet", f"no factsheet PDF in the submission{when}")
    if not any(p.lower().endswith(".zip") for p in present):
        say("missing-factsheet", f"no zip of the factsheet's LaTeX sources in the submission{when}")
    pdfs = [p for p in tree if p.lower().endswith(".pdf")]
    zips = [p for p in tree if p.lower().endswith(".zip")]
    for rel in pdfs:
        with open(tree[rel], "rb") as f:
            if not f.read(5).startswith(b"%PDF-"):
                report.error("bad-factsheet", "not a PDF file", rel)
    for rel in zips:
        try:
            names = nested_zip_names(tree[rel])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            report.error("bad-factsheet", f"the factsheet sources zip is not readable ({exc})", rel)
            continue
        if not any(n.lower().endswith(".tex") for n in names):
            report.error("bad-factsheet", "the factsheet sources zip holds no .tex file", rel)


def _read_spec(tree: Tree, report: Report) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(tree[SPEC].read_text(encoding="utf-8"))
        return EntrySpec.from_dict(data, SPEC)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        report.error("bad-spec", f"not valid TOML ({exc})", SPEC)
    except (EntryError, TypeError, ValueError) as exc:
        report.error("bad-spec", str(exc).replace(f"{SPEC}: ", ""), SPEC)
    return None


def inside_path(rel: str) -> str | None:
    """``rel`` as a normalised relative posix path, or None when it points outside (absolute or ``..``)."""
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        return None
    parts = [p for p in re.split(r"[/\\]", rel) if p not in ("", ".")]
    return None if ".." in parts or not parts else "/".join(parts)


def validate_esr_code(tree: Tree, report: Report, broken: frozenset[str] = frozenset(), final: bool = False) -> Any:
    """Check an ESR code submission; returns its :class:`~ntirekit.core.spec.EntrySpec` when it has a valid one.

    ``broken`` names files the archive holds but that could not be extracted (already reported): they count as
    present, and their content is not checked. ``final``: the final submission, where a missing factsheet is an error
    (a warning otherwise), whatever the layout.
    """
    for rel in sorted(tree):
        suffix = Path(rel).suffix.lower()
        if suffix not in CODE_EXTS or "__pycache__" in rel.split("/"):
            report.error("unexpected-file", f"file type {suffix or '(none)'} does not belong in a code submission "
                                            f"(allowed: {' '.join(sorted(CODE_EXTS))})", rel)
    present = set(tree) | set(broken)
    legacy = any(p.startswith(("models/", "model_zoo/")) for p in present)
    spec = _read_spec(tree, report) if SPEC in tree else None
    spec_checkpoint = ""
    if SPEC in tree and spec is not None:
        if (spec.track, spec.task) not in CODE_TRACKS:
            report.error("wrong-track", f"a code submission's entry is esr/sr, vqe/qe or vqe/sr (got {spec.track}/"
                                        f"{spec.task})", SPEC)
        problem = entry_name_problem(spec.name) or team_name_problem(spec.name)
        if problem:
            report.error("wrong-name", f"entry name: {problem}", SPEC)
        model_rel = inside_path(spec.factory.split(":", 1)[0])
        if model_rel is None:
            report.error("bad-spec", f"model file {spec.factory!r} must lie inside the submission", SPEC)
        elif model_rel not in present:
            report.error("missing-file", f"the model file {model_rel} named by [model].factory is not in the "
                                         "submission", SPEC)
        if spec.weights is None:
            report.error("missing-weights", "entry.toml has no [weights]: a code submission carries its checkpoint",
                         SPEC)
        else:
            weights_rel = inside_path(spec.weights.file)
            if weights_rel is None:
                report.error("bad-spec", f"[weights].file {spec.weights.file!r} must be a path inside the submission",
                             SPEC)
            elif weights_rel not in present:
                report.error("missing-weights", f"the checkpoint {weights_rel} named by [weights].file is not in the "
                                                "submission", SPEC)
            elif weights_rel in tree:
                spec_checkpoint = weights_rel
                if spec.weights.sha256 and sha256_of(tree[weights_rel]) != spec.weights.sha256:
                    report.error("weights-hash", "sha256 differs from [weights].sha256 in entry.toml", weights_rel)
                check_checkpoint(tree[weights_rel], weights_rel, report, spec.weights.key)
    elif SPEC not in tree and legacy:
        report.warn("no-entry-toml", "no entry.toml: names, checkpoint and factsheet are checked, but the kit cannot "
                                     "build the model (add entry.toml with factory = 'models/<file>.py:<Class>', "
                                     "kwargs and data_range)")
    elif SPEC not in present:
        report.error("not-code", "neither entry.toml nor models/ + model_zoo/: not an ESR code submission")

    if legacy:
        _check_legacy_layout(tree, report, present, skip_checkpoint=spec_checkpoint)
    _check_factsheet(tree, report, required=final, present=present)
    _check_kit_imports(tree, report, frozenset(broken))
    return spec if report.ok else None


def _check_legacy_layout(tree: Tree, report: Report, present: set[str], skip_checkpoint: str = "") -> None:
    models: dict[str, str] = {}
    for rel in sorted(p for p in present if p.startswith("models/") and p.endswith(".py")
                      and p != "models/__init__.py"):
        parts = rel.split("/")
        stem = parts[1][:-3] if len(parts) == 2 else parts[1]          # file, or package folder (2022)
        models.setdefault(stem, rel)
    checkpoints: dict[str, str] = {}
    for rel in sorted(p for p in present if p.startswith("model_zoo/")):
        name = rel.split("/", 1)[1]
        stem, suffix = (name.rsplit(".", 1)[0], "." + name.rsplit(".", 1)[1].lower()) if "." in name else (name, "")
        if "/" in name or suffix not in CHECKPOINT_EXTS:
            report.error("wrong-name", "model_zoo/ holds [TeamID]_[ModelName].pth|pt|ckpt files only", rel)
            continue
        checkpoints[stem] = rel
    if not models:
        report.error("missing-file", "models/ holds no [TeamID]_[ModelName].py model file")
    if not checkpoints:
        report.error("missing-weights", "model_zoo/ holds no checkpoint ([TeamID]_[ModelName].pth)")
    for stem, rel in {**models, **checkpoints}.items():
        problem = team_name_problem(stem)
        if problem:
            report.error("wrong-name", problem, rel)
    for stem, rel in models.items():
        if stem not in checkpoints and checkpoints:
            report.error("wrong-name", f"no checkpoint model_zoo/{stem}.[pth|pt|ckpt] matches the model file", rel)
    for stem, rel in checkpoints.items():
        if stem not in models and models:
            report.error("wrong-name", f"no model file models/{stem}.py matches the checkpoint", rel)
    teams = {t for t in (team_id(s) for s in [*models, *checkpoints]) if t is not None}
    if len(teams) > 1:
        report.error("mixed-teams", f"one submission is one team; found team ids {sorted(teams)}")
    for rel in checkpoints.values():
        if rel != skip_checkpoint and rel in tree:
            check_checkpoint(tree[rel], rel, report)


def validate_esr_results(tree: Tree, report: Report, data: str | Path | None = None, scale: int = 4,
                         broken: frozenset[str] = frozenset()) -> None:
    pngs: list[str] = []
    for rel in sorted(set(tree) | set(broken)):
        if rel == README:
            continue
        if "/" in rel:
            report.error("unexpected-folder", "SR images sit at the archive root, not in folders", rel)
        elif not rel.endswith(".png"):
            report.error("unexpected-file", "an ESR results submission holds .png SR images and readme.txt only", rel)
        else:
            pngs.append(rel)
    if not pngs:
        report.error("missing-output", "no SR images (.png at the archive root)")
    _summarise(report, "wrong-name", [p for p in pngs if LR_SUFFIX.search(p[:-4])],
               "{} is named like the LR input; SR images carry the HR image's name (0801x4.png -> 0801.png)")
    sizes = _check_pngs(tree, [p for p in pngs if p in tree], report)
    _check_readme(tree, report, "esr-results", broken)
    report.info["images"] = len(pngs)
    if data is None:
        return
    try:
        expected = expected_images(data, scale)
    except Exception as exc:  # DataError, unreadable files
        report.error("bad-data", f"cannot read the dataset {data}: {exc}")
        return
    _compare_names(report, expected, set(pngs), "image")
    wrong = [f"{rel} is {sizes[rel][1]}x{sizes[rel][0]}, expected {expected[rel][1]}x{expected[rel][0]}"
             for rel in sorted(sizes) if rel in expected and sizes[rel] != expected[rel]]
    _summarise(report, "wrong-size", wrong, "{}")


def _compare_names(report: Report, expected: Mapping[str, Any], present: set[str], what: str) -> None:
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing:
        report.error("missing-output", f"{len(missing)} {what}(s) of the dataset are missing: "
                                       f"{', '.join(missing[:EXAMPLES])}{' ...' if len(missing) > EXAMPLES else ''}")
    if extra:
        report.error("extra-output", f"{len(extra)} {what}(s) are not in the dataset: "
                                     f"{', '.join(extra[:EXAMPLES])}{' ...' if len(extra) > EXAMPLES else ''}")


def _check_readme(tree: Tree, report: Report, fmt: str, broken: frozenset[str] = frozenset()) -> dict[str, Any]:
    if README not in tree:
        if README not in broken:
            report.error("missing-readme", report.info.get("readme_missing")
                         or "readme.txt with the four NTIRE fields is missing")
        return {}
    try:
        text = tree[README].read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        report.error("missing-readme", f"readme.txt cannot be read ({exc})")
        return {}
    values, problems = parse_readme(text, fmt)
    for code, message in problems:
        report.error(code, message, README)
    report.info["readme"] = values
    return values


def validate_vqe_results(tree: Tree, report: Report, data: str | Path | None = None, scale: int = 1,
                         broken: frozenset[str] = frozenset()) -> None:
    videos: dict[str, list[str]] = {}
    for rel in sorted(set(tree) | set(broken)):
        if rel == README:
            continue
        parts = rel.split("/")
        if len(parts) == 1:
            report.error("unexpected-file", "the archive root holds readme.txt and one folder per video only", rel)
        elif len(parts) > 2:
            report.error("unexpected-folder", "frames sit directly in their video's folder", rel)
        elif not rel.endswith(".png"):
            report.error("unexpected-file", "a video folder holds .png frames only", rel)
        else:
            videos.setdefault(parts[0], []).append(parts[1])
    if not videos:
        report.error("missing-output", "no video folders of .png frames")
    counts: dict[str, list[int]] = {}
    sizes_by_video: dict[str, set[tuple[int, int]]] = {}
    for video, names in sorted(videos.items()):
        numbers, prefixes, bad = [], set(), []
        for name in names:
            m = FRAME_NAME.match(name)
            if not m:
                bad.append(name)
                continue
            prefixes.add(m.group(1))
            numbers.append(int(m.group(2)))
        _summarise(report, "wrong-name", bad, "{} is not a frame name (001.png, 002.png, ... or f001.png, ...)",
                   video)
        if len(prefixes) > 1:
            report.error("wrong-name", "frames mix names with and without the 'f' prefix", video)
        numbers.sort()
        if numbers and numbers[0] == 0:
            report.error("wrong-name", "frames are numbered from 001 (as ffmpeg's %3d.png writes them), not 000", video)
        elif numbers:
            step = 10 if numbers[0] == 10 and all(n % 10 == 0 for n in numbers) else 1
            wanted = list(range(step, numbers[-1] + 1, step))
            gaps = sorted(set(wanted) - set(numbers))
            if gaps:
                report.error("missing-frames", f"{len(gaps)} frame(s) missing in the numbering "
                                               f"({', '.join(map(str, gaps[:EXAMPLES]))}{' ...' if len(gaps) > EXAMPLES else ''})"
                                               + ("; every 10th frame" if step == 10 else ""), video)
        counts[video] = numbers
        sizes = _check_pngs(tree, [f"{video}/{n}" for n in names if f"{video}/{n}" in tree], report)
        sizes_by_video[video] = set(sizes.values())
        if len(sizes_by_video[video]) > 1:
            report.error("wrong-size", f"frames of one video differ in size: "
                                       f"{sorted(f'{w}x{h}' for h, w in sizes_by_video[video])}", video)
    _check_readme(tree, report, "vqe-results", broken)
    report.info["videos"] = len(videos)
    report.info["frames"] = sum(len(v) for v in videos.values())
    if data is None:
        return
    try:
        expected = expected_videos(data, scale)
    except Exception as exc:
        report.error("bad-data", f"cannot read the clips in {data}: {exc}")
        return
    _compare_names(report, expected, set(videos), "video")
    for video, numbers in sorted(counts.items()):
        if video not in expected or not numbers:
            continue
        n, (h, w) = expected[video]
        every_10th = numbers[0] == 10 and all(k % 10 == 0 for k in numbers)
        wanted = list(range(10, n + 1, 10)) if every_10th else list(range(1, n + 1))
        if numbers != wanted:
            report.error("frame-count", f"{len(numbers)} frames (up to {numbers[-1]}); the input video has {n} frames, "
                                        f"so {len(wanted)} are expected" + (" (every 10th)" if every_10th else ""),
                         video)
        if sizes_by_video.get(video) and sizes_by_video[video] != {(h, w)}:
            got = ", ".join(sorted(f"{sw}x{sh}" for sh, sw in sizes_by_video[video]))
            report.error("wrong-size", f"frames are {got}, expected {w}x{h}", video)


def validate(tree: Tree, fmt: str, report: Report, *, data: str | Path | None = None, scale: int | None = None,
             broken: Iterable[str] = (), final: bool = False) -> Any:
    """Run the content checks of ``fmt`` on ``tree`` (the manifest is left out). ``broken``: files the archive
    holds but that could not be extracted (reported already; they count as present but are not read). ``final``:
    check as the final submission (a missing factsheet of a code submission is an error)."""
    tree = {k: v for k, v in tree.items() if k != MANIFEST}
    gone = frozenset(broken) - {MANIFEST}
    if fmt == "esr-code":
        return validate_esr_code(tree, report, gone, final)
    if fmt == "esr-results":
        return validate_esr_results(tree, report, data, 4 if scale is None else scale, gone)
    if fmt == "vqe-results":
        return validate_vqe_results(tree, report, data, 1 if scale is None else scale, gone)
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")

