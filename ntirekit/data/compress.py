"""HEVC compression of clean clips, low-delay P with a peak-quality-frame (PQF) QP pattern, as in the NTIRE VQE tracks.

The challenge data were made with the HM 16.20 reference encoder, low-delay P (``encoder_lowdelay_P_main.cfg``) at
QP 37. HM is not packaged anywhere; we use the x265 command-line encoder (Debian package ``x265``) in the same
structure and decode with the ffmpeg command line (Debian package ``ffmpeg``)::

    apt-get install x265 ffmpeg

Pipeline: RGB frames -> raw YUV 4:2:0 (the convention of :mod:`ntirekit.data.video`) -> ``x265`` (one I frame, then
P frames only: ``--bframes 0 --keyint -1 --no-scenecut``, 4 reference frames, ``--tune psnr`` (no psycho-visual
tuning, no adaptive quantisation, no cu-tree), one QP per frame forced by ``--qpfile``) -> ``ffmpeg`` decodes the
bitstream to raw YUV -> RGB PNG frames, with ``qp.txt`` and ``clip.json`` beside them.

Per-frame QPs (:func:`hm_ldp_qps`), HM's low-delay P GOP of 4 at base QP ``q``:

- frame 0 (I): ``q``;
- every ``period``-th frame (4, 8, ...; the PQFs): ``q + 1``;
- the frames between: ``q + 5`` (odd positions in the GOP) or ``q + 4`` (even), *plus* HM's QP-offset model
  (``QPOffsetModelOff -6.5``, ``QPOffsetModelScale 0.2590``: ``+floor(clip(0, 3, 0.259·qp' - 6.5 + 0.5))`` where
  ``qp'`` is the offset QP), which adds +3 at QP 37, only with ``qp_model=True``.

By default (``qp_model=False``) the pattern at QP 37 is 37, 42, 41, 42, 38, 42, 41, 42, 38, ...: base QP, +1 on every
PQF, +4/+5 between, the pattern the challenge data is described by; ``qp_model=True`` gives HM 16.20's full
computation, 37, 45, 44, 45, 38, ...

x265 is not HM, so bit rates and absolute PSNR differ from the challenge data; the structure (one I frame, then P
frames, the QP of every frame, hence the PQF quality pattern) is the same. Known differences: x265 references the 4
previous frames (HM's low-delay P: the previous frame and the 3 most recent PQFs) and makes its own mode and
rate-distortion (lambda) decisions.

Sources (facts only, no code copied): HM's ``cfg/encoder_lowdelay_P_main.cfg`` GOP table and its
``getQPForPicture`` (the JCTVC-X0038 QP-offset model); x265's CLI documentation for ``--qpfile`` (lines
``frame_number frame_type QP``, types ``I i K P B b``) and ``--csv``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from ntirekit.core.errors import NtirekitError, OptionError
from ntirekit.data.video import CLIP_JSON, QP_FILE, Clip, ClipError, read_clip, write_png_folder, write_qp_file, \
    write_yuv420

__all__ = ["CompressError", "ToolNotFoundError", "compress_clip", "hm_ldp_qps", "tool_version", "INSTALL_HINT"]

INSTALL_HINT = "install them with: apt-get install x265 ffmpeg"

#: HM ``encoder_lowdelay_P_main.cfg``: QPoffset of GOP positions 1, 2, 3 (the non-PQF frames) and of the PQF.
HM_LDP_OFFSETS = {"odd": 5, "even": 4, "pqf": 1}
HM_QP_MODEL = (-6.5, 0.2590)  # QPOffsetModelOff, QPOffsetModelScale of the non-PQF GOP entries


class CompressError(NtirekitError, RuntimeError):
    """The encoder or decoder failed, or produced something other than asked."""


class ToolNotFoundError(CompressError):
    """x265 or ffmpeg is not installed."""


def hm_ldp_qps(n: int, qp: int = 37, period: int = 4, *, qp_model: bool = False) -> list[int]:
    """Per-frame QPs of HM's low-delay P configuration, generalised to any PQF period (see the module docstring)."""
    if n < 1:
        raise OptionError(f"frame count must be at least 1, got {n}")
    if period < 1:
        raise OptionError(f"PQF period must be at least 1, got {period}")
    qps = []
    for i in range(n):
        pos = i % period
        if i == 0:
            q = qp
        elif pos == 0:
            q = qp + HM_LDP_OFFSETS["pqf"]
        else:
            q = qp + HM_LDP_OFFSETS["odd" if pos % 2 else "even"]
            if qp_model:
                off, scale = HM_QP_MODEL
                q += int(math.floor(min(3.0, max(0.0, q * scale + off + 0.5))))
        qps.append(max(0, min(51, q)))
    return qps


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ToolNotFoundError(f"{tool} not found on PATH: 'ntirekit data compress' needs the x265 encoder and the "
                                f"ffmpeg decoder; {INSTALL_HINT}")
    return found


def tool_version(tool: str) -> str:
    """One line naming the tool's version (``x265 3.5+1-f0c1022b6``, ``ffmpeg 5.1.9-0+deb12u1``)."""
    return _version_of(_which(tool))


@functools.lru_cache(maxsize=None)
def _version_of(exe: str) -> str:
    proc = subprocess.run([exe, "--version" if "x265" in Path(exe).name else "-version"], capture_output=True,
                          text=True)
    text = proc.stdout + proc.stderr
    m = re.search(r"encoder version\s+(\S+)", text) or re.search(r"version\s+(\S+)", text)
    return f"{Path(exe).name} {m.group(1)}" if m else Path(exe).name


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise CompressError(f"{what} failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}")
    return proc


def _fps_arg(fps: float) -> str:
    return str(int(fps)) if float(fps).is_integer() else repr(float(fps))


def _read_x265_csv(path: Path) -> list[dict]:
    """Per-frame rows of x265's ``--csv`` log (csv-log-level 1), in display (POC) order."""
    text = path.read_text()
    table = text.split("\n\n", 1)[0]  # the summary follows a blank line
    rows = []
    for row in csv.DictReader(io.StringIO(table), skipinitialspace=True):
        try:
            rows.append({"poc": int(row["POC"]), "type": row["Type"].strip(), "qp": float(row["QP"]),
                         "bits": int(row["Bits"])})
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(rows, key=lambda r: r["poc"])


def compress_clip(clip_or_path: Clip | str | os.PathLike, out_dir: str | os.PathLike, *, qp: int = 37,
                  pqf_period: int = 4, encoder: str = "x265", decoder: str = "ffmpeg", preset: str = "medium",
                  frames: int | None = None, qp_model: bool = False, size: str | Sequence[int] | None = None,
                  fps: float | None = None, name: str | None = None, overwrite: bool = True) -> Path:
    """Compress a clean clip with x265 (low-delay P, PQF QP pattern) and decode it back to PNG frames.

    Returns the folder ``out_dir/<name>`` holding ``00000000.png``, ... (the decoded frames), ``qp.txt`` (the per-frame
    ``frame type qp`` lines given to x265, checked against x265's own log), ``clip.json`` (source, QP pattern, encoder
    and decoder versions, bits per frame) and ``<name>.hevc`` (the bitstream). ``frames`` keeps only the first N frames.
    An existing output folder is replaced only when it holds a ``clip.json`` (i.e. was written here).
    """
    clip = clip_or_path if isinstance(clip_or_path, Clip) else read_clip(clip_or_path, size=size, fps=fps)
    clip = clip.head(frames)
    n = len(clip)
    if n == 0:
        raise ClipError(f"clip {clip.name} has no frames")
    if not 0 <= qp <= 51:
        raise OptionError(f"QP must be in 0..51, got {qp}")
    width, height = clip.size
    if width % 2 or height % 2:
        raise ClipError(f"clip {clip.name} is {width}x{height}: yuv420p compression needs even width and height")
    x265 = _which(encoder)
    ffmpeg = _which(decoder)
    enc_version, dec_version = tool_version(x265), tool_version(ffmpeg)

    name = name or clip.name
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists():
        if not (final.is_dir() and (final / CLIP_JSON).is_file()):
            raise CompressError(f"{final} exists and is not a compressed clip written by ntirekit; "
                                "choose another output folder")
        if not overwrite:
            raise CompressError(f"{final} exists (overwrite=False)")
    out_dir.mkdir(parents=True, exist_ok=True)

    qps = hm_ldp_qps(n, qp, pqf_period, qp_model=qp_model)
    types = ["I" if i == 0 else "P" for i in range(n)]
    enc_fps = clip.fps or 25.0  # does not change constant-QP encoding; x265 just needs a rate
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp_str:
        tmp = Path(tmp_str)
        stage = tmp / name
        stage.mkdir()
        src_yuv, _ = write_yuv420(clip, tmp / "source.yuv")
        qp_file = write_qp_file(stage / QP_FILE, qps, types)
        bitstream = stage / f"{name}.hevc"
        csv_log = tmp / "x265.csv"
        enc_cmd = [x265, "--input", str(src_yuv), "--input-res", f"{width}x{height}", "--input-depth", "8",
                   "--input-csp", "i420", "--fps", _fps_arg(enc_fps), "--frames", str(n),
                   "--preset", preset, "--tune", "psnr",
                   "--bframes", "0", "--keyint", "-1", "--no-scenecut", "--no-open-gop", "--ref", "4",
                   "--qp", str(qp), "--qpfile", str(qp_file), "--aq-mode", "0", "--no-cutree",
                   "--csv", str(csv_log), "--csv-log-level", "1", "--log-level", "error", "--no-progress",
                   "--output", str(bitstream)]
        _run(enc_cmd, "x265")
        log = _read_x265_csv(csv_log)
        used = [int(round(r["qp"])) for r in log]
        used_types = [r["type"][:1] for r in log]
        if used != qps or used_types != types:
            raise CompressError(f"x265 did not follow the QP file: asked {list(zip(types, qps))}, "
                                f"got {list(zip(used_types, used))}")

        dec_yuv = tmp / "decoded.yuv"
        _run([ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(bitstream), "-f", "rawvideo", "-pix_fmt", "yuv420p",
              str(dec_yuv)], "ffmpeg decoding")
        decoded = read_clip(dec_yuv, size=(width, height))
        if len(decoded) != n:
            raise CompressError(f"decoded {len(decoded)} frames from a {n}-frame encode")
        write_png_folder(decoded, stage)

        meta = {
            "name": name,
            "source": str(clip.path) if clip.path is not None else clip.name,
            "frames": n,
            "size": [width, height],
            "fps": clip.fps,
            "qp": qp,
            "pqf_period": pqf_period,
            "pattern": "hm-ldp" + ("-qp-model" if qp_model else ""),
            "pqf_positions": list(range(0, n, pqf_period)),
            "qps": qps,
            "bits": [r["bits"] for r in log],
            "encoder": enc_version,
            "encoder_args": [Path(enc_cmd[0]).name] + [a if not a.startswith(str(tmp)) else Path(a).name
                                                        for a in enc_cmd[1:]],
            "decoder": dec_version,
            "bitstream": bitstream.name,
            "color": "BT.601 limited range, yuv420p, centred chroma (ntirekit.data.video)",
        }
        (stage / CLIP_JSON).write_text(json.dumps(meta, indent=2) + "\n")

        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
    return final
