"""``ntirekit data``: make and look at video data (HEVC compression of clean clips, clip inspection)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np
from tabulate import tabulate

from ntirekit.cli.common import echo_json, json_output, one_line_errors
from ntirekit.core.errors import OptionError
from ntirekit.data.compress import compress_clip
from ntirekit.data.frames import find_pqf, frame_psnr, quality_proxy
from ntirekit.data.video import CLIP_JSON, read_clip
from ntirekit.eval.tracks.vqe import VqeDataError, find_videos
from ntirekit.quality import video_psnr
from ntirekit.data.synth import MotionRange
from ntirekit.data.synth import synth_clips as render
from ntirekit.data.video import parse_size

_ERRORS: tuple[type[BaseException], ...] = (OSError,)


@click.group("data")
def data() -> None:
    """Video data: render clean clips from photos, compress clean clips with HEVC (low-delay P, PQF QP pattern) and
    inspect clips."""


def _size_fps_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--fps", type=float, default=None,
                        help="Frame rate (a .yuv name like clip_640x360_30.yuv gives it too).")(func)
    return click.option("--size", default=None, metavar="WxH",
                        help="Frame size of raw .yuv clips (else read from the name, e.g. clip_640x360_30.yuv).")(func)


@data.command("compress")
@click.argument("clips", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (one sub-folder per clip).")
@click.option("--qp", type=click.IntRange(0, 51), default=37, show_default=True, help="Base QP (the I frame's).")
@click.option("--pqf-period", type=click.IntRange(min=1), default=4, show_default=True,
              help="A peak-quality frame every N frames, from frame 0.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Keep only the first N frames.")
@click.option("--preset", default="medium", show_default=True,
              help="x265 speed preset (ultrafast ... placebo); the QP pattern is the same for all.")
@click.option("--hm-qp-model", is_flag=True,
              help="Add HM 16.20's QP-offset model to the +4/+5 offsets between PQFs (+3 more at QP 37).")
@_size_fps_options
@one_line_errors(*_ERRORS)
def compress(clips: tuple[str, ...], out_dir: str, qp: int, pqf_period: int, frames: int | None, preset: str,
             hm_qp_model: bool, size: str | None, fps: float | None) -> None:
    """Compress clean CLIPS (PNG folders or .yuv files) to HEVC with x265 and decode them to PNG frames.

    Writes OUT/<clip>/ with the decoded frames, qp.txt (per-frame QPs), clip.json and the .hevc bitstream.
    Needs x265 and ffmpeg (apt-get install x265 ffmpeg).
    """
    for path in clips:
        source = read_clip(path, size=size, fps=fps).head(frames)
        out = compress_clip(source, out_dir, qp=qp, pqf_period=pqf_period, preset=preset, qp_model=hm_qp_model)
        done = read_clip(out)
        psnr = frame_psnr(done.frames, source.frames)
        pqf = [p for i, p in enumerate(psnr) if i % pqf_period == 0]
        rest = [p for i, p in enumerate(psnr) if i % pqf_period != 0]
        line = f"{out}: {len(done)} frames, QP {qp} (PQF every {pqf_period}), PSNR {_mean(psnr):.2f} dB"
        if rest:
            line += f" (PQF {_mean(pqf):.2f}, others {_mean(rest):.2f})"
        click.echo(line)


@data.command("synth-clips")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (one PNG folder per clip, with motion.json).")
@click.option("--photos", default="kit", show_default=True,
              help="'kit' (scikit-image's bundled photos, no download) or a folder of images.")
@click.option("--clips", type=click.IntRange(min=1), default=24, show_default=True, help="Number of clips.")
@click.option("--frames", type=click.IntRange(min=2), default=20, show_default=True, help="Frames per clip.")
@click.option("--size", default="256x192", show_default=True, metavar="WxH", help="Frame size.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same clips.")
@click.option("--max-pan", type=float, default=3.0, show_default=True, help="Fastest pan, pixels per frame.")
@click.option("--max-zoom", type=float, default=0.004, show_default=True, help="Fastest zoom, scale change per frame.")
@click.option("--max-rotation", type=float, default=0.15, show_default=True, help="Fastest rotation, degrees per frame.")
@click.option("--foreground", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Probability of a moving foreground crop.")
@one_line_errors(*_ERRORS)
def synth_clips(out_dir: str, photos: str, clips: int, frames: int, size: str, seed: int, max_pan: float,
                max_zoom: float, max_rotation: float, foreground: float) -> None:
    """Render clean clips from still photos with camera motion (sub-pixel pans, slow zoom and rotation, optionally a
    moving foreground crop); compress them with `ntirekit data compress` to train video QE entries."""
    ranges = MotionRange(max_pan=max_pan, min_pan=min(MotionRange.min_pan, max_pan), max_zoom=max_zoom,
                         max_rotation=max_rotation, foreground=foreground)
    made = render(out_dir, photos=photos, clips=clips, frames=frames, size=parse_size(size), seed=seed, ranges=ranges)
    click.echo(f"{out_dir}: {len(made)} clips of {frames} frames at {size} (seed {seed})")


def _mean(values: list[float]) -> float:
    """Mean PSNR the challenge's way: frames with zero error (inf) skipped."""
    return video_psnr(values)


def _runs(mask: list[bool]) -> list[list[int]]:
    """Duplicate positions grouped into runs of consecutive frames."""
    runs: list[list[int]] = []
    for i, dup in enumerate(mask):
        if dup:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    return runs


def inspect_clip(path: str, *, gt: str | None = None, size: str | None = None, fps: float | None = None,
                 pqf_period: int | None = None) -> dict[str, Any]:
    """What ``ntirekit data inspect`` reports, as a dict (one pass over the frames, and over ``gt`` when given; a
    clip written by ``ntirekit data compress`` is compared with the clean source its ``clip.json`` names)."""
    if gt is None and (Path(path) / CLIP_JSON).is_file():
        try:
            gt = str(find_videos(path)[0].gt)
        except VqeDataError:
            gt = None                # the source moved: no PSNR, the rest of the report stands
    clip = read_clip(path, size=size, fps=fps)
    reference = read_clip(gt, size=size, fps=fps) if gt is not None else None
    n = len(clip)
    if reference is not None and len(reference) < n:
        raise OptionError(f"--gt has {len(reference)} frames, fewer than the clip's {n}")
    # The no-reference proxy is only needed when nothing better tells where the PQFs are.
    qps_informative = clip.qps is not None and len(set(clip.qps[1:])) > 1
    need_proxy = reference is None and pqf_period is None and not qps_informative

    duplicates: list[int] = []
    psnr: list[float] = []
    proxy: list[float] = []
    prev = None
    for i, frame in enumerate(clip.frames):
        if prev is not None and np.array_equal(frame, prev):
            duplicates.append(i)
        prev = frame
        if reference is not None:
            psnr.append(frame_psnr([frame], [reference.frames[i]])[0])
        if need_proxy:
            proxy.append(quality_proxy([frame])[0])
    height, width = prev.shape[:2]
    report: dict[str, Any] = {
        "clip": str(path), "name": clip.name, "frames": n, "size": [width, height], "fps": clip.fps,
        "duplicates": len(duplicates), "duplicate_positions": duplicates, "qps": clip.qps,
    }
    if reference is not None:
        report["gt"] = str(gt)
        report["gt_frames"] = len(reference)  # a clip compressed with --frames N is compared with the first N
        report["psnr"] = psnr
        report["psnr_mean"] = _mean(psnr)
    if need_proxy:
        report["quality_proxy"] = proxy
    est = find_pqf(n, qps=clip.qps, period=pqf_period, frame_psnr=psnr if reference is not None else proxy,
                   quality_name="PSNR" if reference is not None else "sharpness proxy")
    report["pqf"] = {"positions": est.positions, "method": est.method, "period": est.period, "detail": est.detail}
    if reference is not None and 0 < len(est.positions) < n:
        pos = set(est.positions)
        report["pqf"]["psnr_mean_pqf"] = _mean([p for i, p in enumerate(psnr) if i in pos])
        report["pqf"]["psnr_mean_other"] = _mean([p for i, p in enumerate(psnr) if i not in pos])
    return report


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.2f}"
    return str(value)


@data.command("inspect")
@click.argument("clip", type=click.Path(exists=True))
@click.option("--gt", type=click.Path(exists=True), default=None,
              help="Clean clip: per-frame PSNR against it (default for a compressed clip: the source in clip.json).")
@click.option("--pqf-period", type=click.IntRange(min=1), default=None,
              help="Known PQF period (used when the clip has no qp.txt).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@_size_fps_options
@one_line_errors(*_ERRORS)
@json_output
def inspect(clip: str, gt: str | None, pqf_period: int | None, as_json: bool, size: str | None,
            fps: float | None) -> None:
    """Frame count, size, duplicate frames, PQF positions (and how they were found), per-frame QP and PSNR."""
    report = inspect_clip(clip, gt=gt, size=size, fps=fps, pqf_period=pqf_period)
    if as_json:
        echo_json(json.dumps(_strict(report), indent=2))
        return
    w, h = report["size"]
    click.echo(f"{report['clip']}: {report['frames']} frames, {w}x{h}"
               + (f", {report['fps']:g} fps" if report["fps"] else ""))
    dups = set(report["duplicate_positions"])
    runs = _runs([i in dups for i in range(report["frames"])])
    click.echo(f"duplicates: {len(dups)}" + (" at " + ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0])
                                                                  for r in runs) if dups else ""))
    pqf = report["pqf"]
    click.echo(f"PQFs ({pqf['method']}: {pqf['detail']}): {pqf['positions'] or 'none'}")
    if "psnr_mean" in report:
        line = f"PSNR vs {report['gt']}: {report['psnr_mean']:.2f} dB"
        if report["gt_frames"] != report["frames"]:
            line += f" (first {report['frames']} of its {report['gt_frames']} frames)"
        if "psnr_mean_pqf" in pqf:
            line += f" (PQF {pqf['psnr_mean_pqf']:.2f} dB, others {pqf['psnr_mean_other']:.2f} dB)"
        click.echo(line)
    columns = [("QP", report.get("qps")), ("PSNR [dB]", report.get("psnr")), ("proxy", report.get("quality_proxy"))]
    columns = [(name, values) for name, values in columns if values is not None]
    pqf_set = set(pqf["positions"])
    rows = [[i, "*" if i in pqf_set else "", "*" if i in dups else "", *(_fmt(values[i]) for _, values in columns)]
            for i in range(report["frames"])]
    click.echo(tabulate(rows, headers=["frame", "PQF", "dup", *(name for name, _ in columns)]))


def _strict(value: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value

