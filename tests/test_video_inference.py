"""Inference over long clips: chunk windows, padding, chunked = whole clip where the overlap covers the model's
temporal reach, duplicate removal, PQF positions per window, and a tiny PQF-BasicVSR++ end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)
from torch import nn

from ntirekit.eval.clip_inference import Window, chunk_windows, enhance_clip, padded_size, reflect_pad
from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

pytestmark = pytest.mark.usefixtures("one_thread")


def test_windows_literal():
    assert chunk_windows(10, 4, 1) == [Window(0, 4, 0, 3), Window(2, 6, 3, 5), Window(4, 8, 5, 7),
                                       Window(6, 10, 7, 10)]
    assert chunk_windows(5, None) == [Window(0, 5, 0, 5)]
    assert chunk_windows(5, 8, 2) == [Window(0, 5, 0, 5)]
    with pytest.raises(ValueError):
        chunk_windows(10, 4, 2)


@pytest.mark.parametrize("n", [1, 2, 7, 10, 23, 40])
@pytest.mark.parametrize("chunk,overlap", [(3, 1), (5, 2), (6, 0), (8, 3)])
def test_windows_tile_the_clip(n, chunk, overlap):
    windows = chunk_windows(n, chunk, overlap)
    kept = [i for w in windows for i in range(w.keep_start, w.keep_stop)]
    assert kept == list(range(n))
    for w in windows:
        assert 0 <= w.start <= w.keep_start < w.keep_stop <= w.stop <= n
        assert w.stop - w.start <= chunk
        assert w.keep_start - w.start >= min(overlap, w.keep_start)          # context before, unless the clip starts
        assert w.stop - w.keep_stop >= min(overlap, n - w.keep_stop)         # context after, unless the clip ends


def test_padded_size_and_reflect_pad():
    assert padded_size(180, 320) == (256, 320)
    assert padded_size(270, 481) == (272, 484)
    assert padded_size(40, 50, min_size=64, multiple=1) == (64, 64)
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    for h, w in ((7, 9), (16, 20)):   # a pad shorter than the frame, and pads several times longer
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, h - 5), (0, w - 6)), mode="reflect")
        assert np.array_equal(reflect_pad(x, h, w).numpy(), ref)
    assert reflect_pad(torch.ones(1, 1, 1, 1), 3, 2).shape == (1, 1, 3, 2)


class PerFrame(nn.Module):
    """A per-frame 3x3 conv (random, fixed) on (N, T, 3, H, W): no temporal reach."""

    def __init__(self, scale: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.scale = scale
        self.calls: list[int] = []

    def forward(self, x):
        n, t, c, h, w = x.shape
        self.calls.append(t)
        y = F.pixel_shuffle(self.conv(x.view(n * t, c, h, w)), self.scale)
        return (0.5 * y + x.view(n * t, c, h, w).repeat_interleave(self.scale, -1).repeat_interleave(self.scale, -2)
                ).view(n, t, c, h * self.scale, w * self.scale)


class Temporal(nn.Module):
    """Output frame t = mean of input frames t-r .. t+r inside the window it is given: temporal reach r."""

    def __init__(self, reach: int = 1):
        super().__init__()
        self.reach = reach

    def forward(self, x):
        t = x.shape[1]
        out = [x[:, max(0, i - self.reach):i + self.reach + 1].mean(1) for i in range(t)]
        return torch.stack(out, 1)


def _clip(n=11, h=37, w=50, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_chunked_equals_whole_for_per_frame_model():
    frames = _clip()
    model = PerFrame().eval()
    whole, stats = enhance_clip(model, frames, min_size=64, pad_to_multiple=4)
    assert stats["chunks"] == 1 and stats["padded_size"] == [64, 64] and stats["frames"] == 11
    assert whole[0].shape == (37, 50, 3) and whole[0].dtype == np.uint8
    for chunk, overlap in ((3, 1), (4, 0), (6, 2)):
        chunked, st = enhance_clip(model, frames, chunk=chunk, overlap=overlap, min_size=64, pad_to_multiple=4)
        assert st["chunks"] > 1 and max(model.calls[-st["chunks"]:]) <= chunk
        assert all(np.array_equal(a, b) for a, b in zip(chunked, whole, strict=True))


def test_overlap_covers_temporal_reach():
    frames = _clip(n=13, h=8, w=8)
    model = Temporal(reach=2)
    kw = dict(min_size=8, pad_to_multiple=1)
    whole, _ = enhance_clip(model, frames, **kw)
    enough, _ = enhance_clip(model, frames, chunk=7, overlap=2, **kw)
    short, _ = enhance_clip(model, frames, chunk=7, overlap=1, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(enough, whole, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(short, whole, strict=True))


def test_x4_model_is_cropped_back():
    frames = _clip(n=3, h=30, w=41)
    out, stats = enhance_clip(PerFrame(scale=4).eval(), frames, min_size=64, pad_to_multiple=1)
    assert stats["scale"] == 4 and stats["padded_size"] == [64, 64]
    assert out[0].shape == (120, 164, 3)


def test_duplicates_are_dropped_and_restored():
    base = _clip(n=5, h=16, w=16)
    frames = [base[0], base[1], base[1].copy(), base[2], base[3], base[3].copy(), base[3].copy(), base[4]]
    model = PerFrame().eval()
    out, stats = enhance_clip(model, frames, min_size=16)
    assert model.calls == [5] and stats["unique_frames"] == 5 and stats["duplicates"] == 3
    assert np.array_equal(out[1], out[2]) and np.array_equal(out[4], out[6])
    direct, _ = enhance_clip(model, frames, min_size=16, drop_duplicates=False)
    assert model.calls[-1] == 8
    assert all(np.array_equal(a, b) for a, b in zip(out, direct, strict=True))  # per-frame model: no difference


class PqfRecorder(PerFrame):
    def __init__(self):
        super().__init__()
        self.seen: list[list[int]] = []

    def default_pqf(self, n):
        return list(range(0, n, 4))

    def forward(self, x, pqf=None):
        self.seen.append(list(pqf))
        return super().forward(x)


def test_pqf_positions_follow_windows_and_duplicates():
    base = _clip(n=10, h=16, w=16)
    model = PqfRecorder().eval()
    enhance_clip(model, base, chunk=4, overlap=1, min_size=16)          # default pattern 0, 4, 8
    assert model.seen == [[0], [2], [0], [2]]                         # windows start at 0, 2, 4, 6
    model.seen.clear()
    frames = [base[0], base[0].copy(), *base[1:]]                     # frame 1 duplicates frame 0: 11 frames
    _, stats = enhance_clip(model, frames, min_size=16, pqf=[0, 5, 9])
    assert stats["pqf"] == [0, 5, 9] and model.seen == [[0, 4, 8]]    # positions of the unique frames


@pytest.mark.slow
def test_tiny_pqf_basicvsrpp_end_to_end():
    torch.manual_seed(0)
    model = PQFBasicVSRPlusPlus(mid_channels=8, num_blocks=1, num_blocks_reconstruction=1).eval()
    frames = _clip(n=5, h=180, w=250)
    frames[3] = frames[2].copy()
    out, stats = enhance_clip(model, frames, chunk=3, overlap=1)
    assert stats["padded_size"] == [256, 256]
    assert len(out) == 5 and out[0].shape == (180, 250, 3) and np.array_equal(out[2], out[3])
    assert stats["unique_frames"] == 4 and stats["chunks"] == 2 and stats["runtime_ms_per_frame"] > 0
    single, _ = enhance_clip(model, frames[:1])                      # one frame: repeated to the model's minimum
    assert single[0].shape == (180, 250, 3)
