"""The ``vqe`` track: video entries on compressed clips, measured the way the NTIRE 2022 VQE challenge did (§3.1).

Data (``options.data``), either layout:

- **pairs**: ``DATA/lq/<video>`` (compressed input) and ``DATA/gt/<video>`` (clean), each a folder of PNG frames or a
  raw ``.yuv`` file (``<video>_640x360_30.yuv``; see :func:`ntirekit.data.video.read_clip`), matched by name;
- **compressed clips**: what ``ntirekit data compress CLIPS --out DATA`` writes: ``DATA/<video>/`` with the decoded
  frames, ``qp.txt`` and ``clip.json``, whose ``source`` names the clean clip (an absolute path, or relative to the
  current folder or to ``DATA``) and ``frames`` how many of its leading frames were compressed. ``DATA`` may also be
  one such clip folder.

A compressed clip's ``qp.txt`` gives its PQF positions (:func:`ntirekit.data.frames.find_pqf`); without one, a PQF
model falls back to its own pattern (every 4th frame for PQF-BasicVSR++).

Per entry and video: the clip goes through :func:`ntirekit.eval.clip_inference.enhance_clip` (duplicates dropped and
restored for QE entries, frames reflect-padded to the entry's declared input contract (``[input]``: ``min_size``,
``multiple``), optional chunks), then per-frame PSNR (``options.protocol``: ``challenge`` = RGB, peak 255, no border) of the output
and of the compressed input against the clean frames; a video's PSNR is the mean over its frames with zero-error
frames skipped, the entry's the mean over videos; ``delta_psnr_db`` = output minus input. For an SR entry (x4 VSR)
the input is bicubic-upscaled (OpenCV) to compare it with the clean frames.

Record keys: ``psnr_db``, ``psnr_input_db``, ``delta_psnr_db``, ``videos`` (per video: ``name``, ``frames``,
``unique_frames``, ``psnr_db``, ``psnr_input_db``, ``delta_psnr_db``, ``runtime_ms_per_frame``, ``chunks``,
``pqf``, ``pqf_source``, ``size``), ``frames``, ``runtime_ms_per_frame`` (model time over all frames: the NTIRE
"runtime per frame"), ``params``, ``macs_per_frame`` (fvcore MACs of a 3-frame minus a 2-frame clip at the first
video's padded size: what one more frame costs; ``macs_input`` says the size), ``max_memory_mib`` (CUDA peak of
``max_memory_allocated``; None on CPU), ``memory_kind``, ``weights`` (pretrained | random), ``chunk``, ``overlap``.

``options.extra``: ``chunk`` (frames per window, default None = whole clip), ``overlap`` (default 2),
``drop_duplicates`` (default: True for QE entries), ``frames`` (only the first N frames of each video), ``macs``
(default True), ``frame_step`` (score every frame, 1, the default, or every 10th, 10, as the NTIRE 2022 online
validation server did: :mod:`ntirekit.quality.vqe_scoring`; the record's ``scoring`` names it), ``save`` (a folder:
outputs written as ``SAVE/<entry>/<video>/001.png, 002.png, ...`` (with ``frame_step`` 10 only ``010.png, 020.png,
...``), the ``vqe-results`` submission layout, with ``SAVE/<entry>/readme.txt`` holding the measured runtime per
frame, CPU/GPU and the entry's description, so ``ntirekit pack SAVE/<entry> --format vqe-results --extra-data 0|1``
packs it as it is (``ntirekit eval`` writes that readme from the record: :func:`ntirekit.cli.eval_cmd.save_vqe_readme`);
``extra_data`` (0 or 1) writes that field too).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ntirekit.core.device import fingerprint, resolve_device
from ntirekit.core.records import record
from ntirekit.core.spec import Entry
from ntirekit.data import DataError
from ntirekit.data.frames import find_pqf
from ntirekit.data.video import CLIP_JSON, Clip, read_clip, write_png_folder, yuv_name_info
from ntirekit.eval.columns import cell
from ntirekit.eval.graph_side import compare_outputs
from ntirekit.eval.guard import EntryFailed, guard
from ntirekit.eval.limits import run_limits
from ntirekit.eval.measure_graph import clip_harness_of, export_info, jailed, vet
from ntirekit.eval.sides import graph_side, jail_checkpoint, team_side, timed_export
from ntirekit.eval.pipeline import declared_weights, macs_per_frame
from ntirekit.eval.track import Column, EvalOptions, Track, TrackOption
from ntirekit.jail.run import Limits
from ntirekit.quality import mean_over_videos, psnr
from ntirekit.quality.vqe_scoring import NTIRE2022_VQE, SCORINGS, VqeScoring, scored_frames, score_video
from ntirekit.data.images import write_image

TRACK = "vqe"


class VqeDataError(DataError, ValueError):
    """A data folder that is not in one of the track's layouts."""


@dataclass(frozen=True)
class VideoPair:
    """A compressed clip, its clean clip, and how many leading clean frames it was made from (None: all)."""

    name: str
    lq: Path
    gt: Path
    gt_frames: int | None = None


def _clip_name(path: Path) -> str:
    return yuv_name_info(path)[0] if path.suffix.lower() == ".yuv" else path.name


def _clips_in(folder: Path) -> dict[str, Path]:
    items = [p for p in sorted(folder.iterdir()) if p.is_dir() or p.suffix.lower() == ".yuv"]
    return {_clip_name(p): p for p in items if not p.name.startswith(".")}


def _compressed_pair(clip_folder: Path, data: Path) -> VideoPair:
    """The pair of a folder written by ``ntirekit data compress``: ``clip.json`` names the clean source and the
    number of its leading frames that were compressed (``--frames``)."""
    meta = json.loads((clip_folder / CLIP_JSON).read_text())
    source = meta.get("source")
    if not source:
        raise VqeDataError(f"{clip_folder / CLIP_JSON} names no source (clean) clip")
    for candidate in (Path(source), data / source, data.parent / source):
        if candidate.exists():
            frames = meta.get("frames")
            return VideoPair(clip_folder.name, clip_folder, candidate, int(frames) if frames else None)
    raise VqeDataError(f"{clip_folder.name}: its clean source {source} was not found (as given, nor under {data})")


def find_videos(data: str | Path) -> list[VideoPair]:
    """The (compressed, clean) clip pairs of a data folder in either layout (module docstring)."""
    if str(data) in ("", "sample"):
        raise VqeDataError("the vqe track needs --data: a folder with lq/ and gt/ clips, or the output of "
                           "'ntirekit data compress CLIPS --out DATA'")
    root = Path(data)
    if not root.is_dir():
        raise VqeDataError(f"{root} is not a folder")
    if (root / "lq").is_dir() and (root / "gt").is_dir():
        lq, gt = _clips_in(root / "lq"), _clips_in(root / "gt")
        missing = sorted(set(lq) - set(gt))
        if missing:
            raise VqeDataError(f"{root / 'gt'} has no clean clip for {', '.join(missing)}")
        pairs = [VideoPair(name, lq[name], gt[name]) for name in lq]
    elif (root / CLIP_JSON).is_file():
        pairs = [_compressed_pair(root, root.parent)]
    else:
        pairs = [_compressed_pair(p, root) for p in sorted(root.iterdir()) if p.is_dir() and (p / CLIP_JSON).is_file()]
    if not pairs:
        raise VqeDataError(f"{root}: no videos (expected lq/ and gt/ sub-folders, or folders written by "
                           "'ntirekit data compress')")
    return pairs


def _pqf_of(clip: Clip) -> tuple[list[int] | None, str]:
    if clip.qps is None:
        return None, "model default"
    est = find_pqf(len(clip), qps=clip.qps)
    return (est.positions, "qp.txt") if est.method == "qp" else (None, f"model default ({est.detail})")


def _input_for_comparison(lq: np.ndarray, gt_shape: tuple[int, ...]) -> np.ndarray:
    if lq.shape == gt_shape:
        return lq
    return cv2.resize(lq, (gt_shape[1], gt_shape[0]), interpolation=cv2.INTER_CUBIC)


def evaluate(entries: list[Entry], options: EvalOptions) -> Iterator[dict[str, Any]]:
    device = resolve_device(options.device)
    fp = fingerprint(device)
    videos: list[VideoPair] | None = None
    track_limits = run_limits(TRACKS[0], options)
    for entry in entries:
        failed: list[dict[str, Any]] = []
        rec: dict[str, Any] | None = None
        with guard(entry, TRACK, fp, failed):  # never yield inside guard
            if videos is None:
                videos = find_videos(options.data)
            rec = _evaluate_jailed(entry, videos, options, fp, track_limits) if jailed(entry, options) else \
                _evaluate_entry(entry, videos, options, device, fp)
        if rec is None:
            yield from failed
        else:
            yield rec


def _evaluate_entry(entry: Entry, videos: list[VideoPair], options: EvalOptions, device: torch.device,
                    fp: dict[str, Any]) -> dict[str, Any]:
    """In process: each video enhanced (:func:`_enhance_video`) and scored (:func:`_score_video`) in turn."""
    _check_entry(entry)
    started = time.perf_counter()
    explicit = options.weights.get(entry.name)
    model, weights = entry.load(explicit, device=device), declared_weights(entry, explicit)
    limit = (options.extra or {}).get("frames")
    per_video: list[dict[str, Any]] = []
    inference: list[dict[str, Any]] = []
    for pair in tqdm(videos, desc=entry.name, unit="video", disable=not options.progress, leave=False):
        lq = read_clip(pair.lq).head(limit)
        gt = read_clip(pair.gt).head(pair.gt_frames).head(limit)
        out, stats = _enhance_video(model, entry, lq, options, device, label=f"{entry.name} {pair.name}")
        per_video.append(_score_video(pair.name, out, lq, gt, stats, entry, options))
        inference.append(stats)
        del out
    fields = _model_fields(model, inference, options)
    return _record(entry, options, fp, per_video, inference, weights, fields, time.perf_counter() - started)


def _check_entry(entry: Entry) -> None:
    if entry.spec.track != "vqe":
        raise ValueError(f"{entry.name} is an {entry.spec.track} entry; the vqe track runs vqe entries")


def _enhance_video(model: torch.nn.Module, entry: Entry, lq: Clip, options: EvalOptions, device: torch.device,
                   label: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """One compressed clip through the model under the entry's harness (:func:`clip_harness_of`, with a frame bar);
    the uint8 output frames and the inference statistics, ``pqf_source`` included."""
    pqf, pqf_source = _pqf_of(lq)
    with tqdm(total=len(lq), desc=label, unit="frame", disable=not options.progress, leave=False) as bar:
        out, stats = clip_harness_of(entry, options).enhance(model, lq.frames, device, pqf, on_frames=bar.update)
        bar.n = len(lq)           # duplicates dropped before the model count as done
        bar.refresh()
    return out, {**stats, "pqf_source": pqf_source if stats["pqf"] is not None else None}


def _score_video(name: str, out: list[np.ndarray], lq: Clip, gt: Clip, stats: dict[str, Any], entry: Entry,
                 options: EvalOptions) -> dict[str, Any]:
    """One video's figures: per-frame PSNR of the output and of the compressed input against the clean frames,
    scored as the protocol says; the output saved when asked."""
    if len(lq) != len(gt):
        raise ValueError(f"{name}: {len(lq)} compressed frames but {len(gt)} clean frames")
    if len(out) != len(gt):
        raise RuntimeError(f"{name}: the entry returned {len(out)} frames for {len(gt)}")
    scoring = _scoring_of(options)
    out_psnr, in_psnr = [], []
    for i, (y, x, ref) in enumerate(zip(out, lq.frames, gt.frames)):
        if y.shape != ref.shape:
            raise ValueError(f"{name} frame {i}: output {y.shape} but clean frame {ref.shape}")
        out_psnr.append(psnr(y, ref, protocol=options.protocol, border=0))
        in_psnr.append(psnr(_input_for_comparison(x, ref.shape), ref, protocol=options.protocol, border=0))
    v_out, v_in = score_video(out_psnr, scoring), score_video(in_psnr, scoring)
    if (options.extra or {}).get("save"):
        _save_frames(out, Path(options.extra["save"]) / entry.name / name, scoring.frame_step)
    return {"name": name, "frames": len(gt), "unique_frames": int(stats["unique_frames"]),
            "size": [int(out[0].shape[1]), int(out[0].shape[0])], "psnr_db": v_out, "psnr_input_db": v_in,
            "delta_psnr_db": v_out - v_in,
            "runtime_ms_per_frame": None if stats["runtime_ms_per_frame"] is None else float(stats["runtime_ms_per_frame"]),
            "chunks": int(stats["chunks"]), "pqf": stats["pqf"], "pqf_source": stats.get("pqf_source"),
            "frame_psnr_db": out_psnr}


def _model_fields(model: torch.nn.Module, inference: list[dict[str, Any]], options: EvalOptions) -> dict[str, Any]:
    """``params``, and the fvcore MACs of one more frame at the first video's padded size (``inference``: each
    video's statistics of :func:`_enhance_video`)."""
    fields: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters()),
                              "macs_per_frame": None, "macs_input": None}
    if (options.extra or {}).get("macs", True) and inference:
        w, h = (int(v) for v in inference[0]["padded_size"])
        fields["macs_per_frame"] = macs_per_frame(model, h, w)
        fields["macs_input"] = [w, h]
    return fields


def _record(entry: Entry, options: EvalOptions, fp: dict[str, Any], per_video: list[dict[str, Any]],
            inference: list[dict[str, Any]], weights: str, model_fields: dict[str, Any],
            seconds: float) -> dict[str, Any]:
    """The entry's record from its scored videos and their inference statistics."""
    harness = clip_harness_of(entry, options)
    scoring = _scoring_of(options)
    model_seconds = sum(float(stats["model_seconds"]) for stats in inference)
    total_frames = sum(v["frames"] for v in per_video)
    peaks = [float(stats["max_memory_mib"]) for stats in inference if stats["max_memory_mib"] is not None]
    psnr_db = mean_over_videos([v["psnr_db"] for v in per_video])
    psnr_in = mean_over_videos([v["psnr_input_db"] for v in per_video])
    spec = entry.spec
    return record(entry.name, TRACK, fp, **{
        "psnr_db": psnr_db, "psnr_input_db": psnr_in, "delta_psnr_db": psnr_db - psnr_in,
        "protocol": options.protocol, "dataset": str(options.data), "videos": per_video, "frames": total_frames,
        "runtime_ms_per_frame": 1000.0 * model_seconds / total_frames, **model_fields,
        "max_memory_mib": max(peaks) if peaks else None,
        "memory_kind": "cuda_max_memory_allocated" if fp.get("kind") == "cuda" else None,
        "weights": weights, "task": spec.task, "scale": spec.scale, "data_range": spec.data_range,
        "chunk": harness.chunk, "overlap": harness.overlap, "drop_duplicates": harness.drop_duplicates,
        "scoring": scoring.name, "frame_step": scoring.frame_step, "seconds": round(seconds, 3)})


def _scoring_of(options: EvalOptions) -> VqeScoring:
    extra = options.extra or {}
    return _scoring(options.protocol, 10 if extra.get("every_10th") else int(extra.get("frame_step", 1)))


# ------------------------------------------------------------------------------ untrusted: jailed, parent-scored

def _evaluate_jailed(entry: Entry, videos: list[VideoPair], options: EvalOptions, fp: dict[str, Any],
                     track_limits: Callable[[], Limits]) -> dict[str, Any]:
    """An untrusted (or ``--isolate``d) entry: its code, in the jail, gets each video's compressed frames (never a
    clean frame) and returns its uint8 output frames, which this process scores; it reports the model calls it made
    and exports its graph for them. A jail without team code runs the graph on the same frames through the same
    harness: the outputs must be the same ("exported graph differs from the scored model"), and the runtime per
    frame, memory, params and MACs per frame are the kit's figures on that graph. A network that does not export is
    scored without them (``graph``: why)."""
    _check_entry(entry)
    started = time.perf_counter()
    extra = options.extra or {}
    explicit = options.weights.get(entry.name)
    weights, rel = jail_checkpoint(entry, explicit)
    harness = clip_harness_of(entry, options, rel)
    limit = extra.get("frames")
    limits = track_limits()
    per_video: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ntirekit-vqe-") as tmp:
        with team_side(entry, harness, jailed=True, limits=limits, weights=weights) as (team, info):
            for index, pair in enumerate(videos):
                lq = read_clip(pair.lq).head(limit)
                gt = read_clip(pair.gt).head(pair.gt_frames).head(limit)
                pqf, pqf_source = _pqf_of(lq)
                out, report = team.run_clip(lq.frames, pqf)
                np.save(Path(tmp) / f"{index}.npy", np.stack(out))
                stats = {**report["stats"], "runtime_ms_per_frame": None,
                         "pqf_source": pqf_source if report["stats"].get("pqf") is not None else None}
                per_video.append(_score_video(pair.name, out, lq, gt, stats, entry, options))
                reports.append({**report, "pqf": report["stats"].get("pqf") if pqf is None else list(pqf)})
                del out
            calls = [c for r in reports for c in r["calls"]]
            w, h = (int(v) for v in reports[0]["stats"]["padded_size"])
            calls += [([1, 3, 3, h, w], {}), ([1, 2, 3, h, w], {})]
            data, reason, export_seconds = timed_export(team, calls)
            how: dict[str, Any] = {"exportable": False, "reason": reason}
        fields: dict[str, Any] = {"params": None, "macs_per_frame": None, "macs_input": None}
        inference: list[dict[str, Any]] = [{"model_seconds": 0.0, "max_memory_mib": None} for _ in videos]
        if data is not None:
            graph = vet(data)
            with graph_side(data, harness, jailed=True, limits=limits) as side:
                for index, (pair, report) in enumerate(zip(videos, reports)):
                    lq = read_clip(pair.lq).head(limit)
                    graph_out, stats = side.run_clip(lq.frames, report["pqf"], report["attrs"])
                    team_out = np.load(Path(tmp) / f"{index}.npy", mmap_mode="r")
                    for k, frame in enumerate(graph_out):
                        problem = compare_outputs(np.asarray(team_out[k]), frame)
                        if problem:
                            raise EntryFailed(f"exported graph differs from the scored model: {pair.name} frame {k}: "
                                              f"{problem}", "graph-differs")
                    per_video[index]["runtime_ms_per_frame"] = float(stats["runtime_ms_per_frame"])
                    inference[index] = stats
                if (options.extra or {}).get("macs", True):
                    fields = side.figures(w, h)
                else:
                    fields = {**side.figures(w, h), "macs_per_frame": None, "macs_input": None}
            how = export_info(graph, data, export_seconds, sum(v["frames"] for v in per_video))
    weights_label = declared_weights(entry, explicit)
    rec = _record(entry, options, fp, per_video, inference, weights_label, fields, time.perf_counter() - started)
    if data is None:
        rec["runtime_ms_per_frame"] = None
    rec.update(graph=how, measured="graph" if data is not None else None, **info.fields())
    return rec


def _scoring(protocol: str, frame_step: int) -> VqeScoring:
    """The NTIRE 2022 scoring with this PSNR protocol and frame step (every frame or every 10th)."""
    named = [s for s in SCORINGS.values() if s.frame_step == frame_step and s.psnr_protocol == protocol]
    if named:
        return named[0]
    return VqeScoring(f"{NTIRE2022_VQE.name}-{protocol}-step{frame_step}", psnr_protocol=protocol,
                      frame_step=frame_step)


def _save_frames(frames: list[np.ndarray], folder: Path, frame_step: int) -> None:
    """The scored frames as ``001.png, 002.png, ...`` (numbered from 1, as ``ffmpeg %3d.png`` does)."""
    if frame_step == 1:
        write_png_folder(frames, folder, start=1, digits=3)
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i in scored_frames(len(frames), frame_step):
        write_image(folder / f"{i + 1:03d}.png", frames[i])


__all__ = ["evaluate", "find_videos", "macs_per_frame", "VideoPair", "VqeDataError"]

TRACKS = (Track(
    TRACK, evaluate, "vqe", times=True, needs_weights=True,
    record_fields=("psnr_db", "psnr_input_db", "delta_psnr_db", "protocol", "dataset", "videos", "frames",
                   "runtime_ms_per_frame", "params", "macs_per_frame", "max_memory_mib", "weights", "chunk",
                   "overlap", "drop_duplicates", "scoring", "frame_step"),
    columns=(Column("PSNR [dB]", cell("psnr_db", fmt="{:.3f}")),
             Column("ΔPSNR [dB]", cell("delta_psnr_db", fmt="{:+.3f}")),
             Column("ms/frame", cell("runtime_ms_per_frame")),
             Column("Params [M]", cell("params", scale=1e6, fmt="{:.3f}"))),
    options=(TrackOption("chunk", int, None, "frames per inference window (default: whole clip)", "--chunk"),
             TrackOption("overlap", int, 2, "frames shared by adjacent windows", "--overlap"),
             TrackOption("drop_duplicates", bool, None, "drop repeated frames before enhancement (default: for QE "
                         "entries)", "--keep-duplicates", negate=True),
             TrackOption("frames", int, None, "only the first N frames of each video", "--max-frames"),
             TrackOption("save", str, None, "write the enhanced frames to DIR/<entry>/<video>/ with "
                         "DIR/<entry>/readme.txt: the vqe-results layout `ntirekit pack` takes", "--save-frames"),
             TrackOption("every_10th", bool, False, "score (and save) only every 10th frame (010, 020, ...), as the "
                         "NTIRE 2022 online validation server did", "--every-10th"),
             TrackOption("frame_step", int, 1, "score every Nth frame (--every-10th is 10)"),
             TrackOption("extra_data", int, None, "with --save-frames: readme.txt's 'Extra Data [1] / No Extra Data "
                         "[0]'", "--extra-data"),
             TrackOption("macs", bool, True, "count the MACs per frame")),
    default_data="", description="ΔPSNR of video entries on compressed clips, runtime per frame",
    optional_fields=("graph", "measured", "sandbox", "limits", "output", "macs_input", "psnr_input_db", "task",
                     "scale", "data_range", "seconds", "memory_kind"),
    check_data=lambda data, _scale: find_videos(data)),)
