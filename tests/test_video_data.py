"""Clips: PNG folders and raw YUV 4:2:0 files, the colour convention, writers."""

from __future__ import annotations

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from ntirekit.data.video import (Clip, ClipError, PngFrames, YuvFrames, read_clip, read_qp_file, rgb_to_yuv420,
                                 write_png_folder, write_qp_file, write_yuv420, yuv420_to_rgb, yuv_name_info)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def _hand_planes(width: int, height: int, frames: int):
    """Known Y/U/V planes: every sample different from frame to frame."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    out = []
    for t in range(frames):
        y = (16 + 7 * t + np.arange(width * height).reshape(height, width)) % 256
        u = (100 + 3 * t + np.arange(cw * ch).reshape(ch, cw)) % 256
        v = (200 - 5 * t - np.arange(cw * ch).reshape(ch, cw)) % 256
        out.append(tuple(p.astype(np.uint8) for p in (y, u, v)))
    return out


@pytest.mark.parametrize("width,height", [(6, 4), (5, 3)])
def test_yuv_reader_against_hand_made_file(tmp_path, width, height):
    planes = _hand_planes(width, height, 3)
    path = tmp_path / f"hand_{width}x{height}_25.yuv"
    with open(path, "wb") as f:  # I420: Y, then U, then V, frame after frame
        for y, u, v in planes:
            for plane in (y, u, v):
                for value in plane.ravel():
                    f.write(bytes([int(value)]))
    clip = read_clip(path)
    assert clip.name == "hand" and clip.fps == 25.0
    assert len(clip) == 3 and clip.size == (width, height)
    assert isinstance(clip.frames, YuvFrames)
    for i, (y, u, v) in enumerate(planes):
        got = clip.frames.read_planes(i)
        for want, have in zip((y, u, v), got):
            np.testing.assert_array_equal(have, want)
        rgb = clip.frames[i]
        assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb, yuv420_to_rgb(y, u, v))
    assert len(list(clip.frames)) == 3
    assert len(clip.frames[1:]) == 2
    np.testing.assert_array_equal(clip.frames[1:][0], clip.frames[1])


def test_yuv_to_rgb_values_bt601_limited_range():
    # Flat chroma, so upsampling plays no part: studio black, white, grey and the BT.601 primaries.
    cases = [((16, 128, 128), (0, 0, 0)), ((235, 128, 128), (255, 255, 255)), ((126, 128, 128), (128, 128, 128)),
             ((81, 90, 240), (255, 0, 0)), ((145, 54, 34), (0, 255, 0)), ((41, 240, 110), (0, 0, 255))]
    for (y, u, v), rgb in cases:
        out = yuv420_to_rgb(np.full((2, 2), y, np.uint8), np.full((1, 1), u, np.uint8), np.full((1, 1), v, np.uint8))
        assert np.abs(out.astype(int) - np.array(rgb)).max() <= 1, ((y, u, v), out[0, 0])
    # ... and the other way.
    for (y, u, v), rgb in cases:
        planes = rgb_to_yuv420(np.full((2, 2, 3), rgb, np.uint8))
        assert [int(p[0, 0]) for p in planes] == pytest.approx([y, u, v], abs=1)


def test_chroma_is_upsampled_bilinearly_with_centred_siting():
    y = np.full((2, 4), 126, np.uint8)
    u = np.array([[128, 128]], np.uint8)
    v = np.array([[128, 168]], np.uint8)  # Cr steps between the two chroma samples
    out = yuv420_to_rgb(y, u, v).astype(int)
    red = out[0, :, 0]
    # columns 0, 1 | 2, 3 belong to chroma samples 0 | 1: weights 1, 3/4 | 3/4, 1 (edges replicated)
    assert red[0] < red[1] < red[2] < red[3]
    assert red[1] - red[0] == pytest.approx((red[3] - red[0]) / 4, abs=1)


def test_rgb_yuv_rgb_round_trip_error_is_small(video_dir):
    frame = read_clip(video_dir / "realbasicvsr_demo_000").frames[0][:120, :200]
    back = yuv420_to_rgb(*rgb_to_yuv420(frame))
    assert _psnr(frame, back) > 40.0  # the loss is the 4:2:0 chroma subsampling
    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (9, 7, 1), dtype=np.uint8), 3, axis=2)
    assert np.abs(yuv420_to_rgb(*rgb_to_yuv420(grey)).astype(int) - grey).max() <= 1  # no chroma: only rounding


def test_write_yuv420_and_read_back(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(4)]
    path, count = write_yuv420(frames, tmp_path / "rand.yuv")
    assert count == 4
    assert path.stat().st_size == 4 * (8 * 10 + 2 * 4 * 5)
    clip = read_clip(path, size="10x8", fps=30)
    assert len(clip) == 4 and clip.size == (10, 8) and clip.fps == 30
    for i, frame in enumerate(frames):
        for want, have in zip(rgb_to_yuv420(frame), clip.frames.read_planes(i)):
            np.testing.assert_array_equal(have, want)
    with pytest.raises(ClipError, match="one size"):
        write_yuv420([frames[0], frames[0][:6]], tmp_path / "mixed.yuv")


def test_yuv_size_errors(tmp_path):
    path = tmp_path / "clip_16x16.yuv"
    path.write_bytes(bytes(16 * 16 * 3 // 2 * 2 + 5))
    with pytest.raises(ClipError, match="not a whole number of 16x16 yuv420p frames"):
        read_clip(path)
    nameless = tmp_path / "clip.yuv"
    nameless.write_bytes(bytes(384))
    with pytest.raises(ClipError, match="frame size unknown"):
        read_clip(nameless)
    assert len(read_clip(nameless, size="16x16")) == 1
    with pytest.raises(ClipError, match="WIDTHxHEIGHT"):
        read_clip(nameless, size="16-16")


@pytest.mark.parametrize("name,expected", [
    ("BasketballPass_416x240_50.yuv", ("BasketballPass", (416, 240), 50.0)),
    ("a_b_640x360.yuv", ("a_b", (640, 360), None)),
    ("x_1920x1080_29.97.yuv", ("x", (1920, 1080), 29.97)),
    ("plain.yuv", ("plain", None, None)),
])
def test_yuv_name_info(name, expected):
    assert yuv_name_info(name) == expected


def test_png_folder_numeric_order_qps_and_meta(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (10, 2, 1):
        img = np.full((4, 6, 3), i, np.uint8)
        img[0, 0] = (255, 0, 0)  # red in RGB: checks the BGR->RGB swap
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    clip = read_clip(folder)
    assert isinstance(clip.frames, PngFrames)
    assert [p.name for p in clip.frames.paths] == ["1.png", "2.png", "10.png"]
    assert [int(f[1, 1, 0]) for f in clip.frames] == [1, 2, 10]
    assert tuple(clip.frames[0][0, 0]) == (255, 0, 0)
    assert clip.qps is None and clip.fps is None and clip.size == (6, 4)

    write_qp_file(folder / "qp.txt", [37, 45, 38])
    (folder / "clip.json").write_text(json.dumps({"fps": 24}))
    clip = read_clip(folder)
    assert clip.qps == [37, 45, 38] and clip.fps == 24
    assert clip.head(2).qps == [37, 45] and len(clip.head(2)) == 2
    (folder / "qp.txt").write_text("0 I 37\n1 P 45\n")
    with pytest.raises(ClipError, match="2 QPs for 3 frames"):
        read_clip(folder)


def test_qp_file_formats(tmp_path):
    path = tmp_path / "qp.txt"
    path.write_text("# comment\n0 I 37\n1 P 45\n\n2 P 44  # trailing\n")
    assert read_qp_file(path) == [37, 45, 44]
    path.write_text("37\n45\n")
    assert read_qp_file(path) == [37, 45]
    path.write_text("1 45\n0 37\n")
    assert read_qp_file(path) == [37, 45]
    path.write_text("0 I 37\n2 P 45\n")
    with pytest.raises(ClipError, match="without gaps"):
        read_qp_file(path)


def test_write_png_folder_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    paths = write_png_folder(Clip("c", frames), tmp_path / "out")
    assert [p.name for p in paths] == ["00000000.png", "00000001.png", "00000002.png"]
    for a, b in zip(frames, read_clip(tmp_path / "out").frames):
        np.testing.assert_array_equal(a, b)


def test_errors_are_clear(tmp_path):
    with pytest.raises(ClipError, match="does not exist"):
        read_clip(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipError, match="no image frames"):
        read_clip(tmp_path / "empty")
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(ClipError, match="folder of PNG frames or a raw .yuv"):
        read_clip(tmp_path / "x.mp4")
    with pytest.raises(ClipError, match="RGB uint8"):
        Clip("bad", [np.zeros((4, 4), np.uint8)])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
def test_convention_matches_ffmpeg_accurate_conversion(tmp_path, video_dir):
    frames = [f[:64, :96] for f in read_clip(video_dir / "realbasicvsr_demo_000").frames[:2]]
    path, _ = write_yuv420(frames, tmp_path / "c_96x64.yuv")
    out = tmp_path / "c.rgb"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "96x64", "-i",
                    str(path), "-sws_flags", "bicubic+accurate_rnd+full_chroma_int+bitexact", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", str(out)], check=True)
    theirs = np.fromfile(out, np.uint8).reshape(2, 64, 96, 3).astype(int)
    ours = np.stack(list(read_clip(path).frames)).astype(int)
    assert abs((ours - theirs).mean()) < 0.05  # no bias
    assert np.abs(ours - theirs).mean() < 0.5
