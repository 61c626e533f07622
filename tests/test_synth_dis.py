"""Synthetic training clips (determinism, the motion asked for) and the DIS flow source (convention, augmentation,
reversal, the BasicVSR++ flow input)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from ntirekit.data.synth import MotionRange, draw_motion, render_clip, synth_clips
from ntirekit.data.video import read_clip
from ntirekit.nn.dis_flow import augment_flows, clip_flows, downscale_flow, flow_between, reverse_flows
from ntirekit.nn.flow import flow_warp
from ntirekit.train.video import augment_sequence

PAN_ONLY = MotionRange(min_pan=1.3, max_pan=1.3, max_zoom=0.0, max_rotation=0.0, foreground=0.0)


def _frames(folder):
    return [np.asarray(f) for f in read_clip(folder).frames]


def test_synth_clips_are_deterministic_for_a_seed(tmp_path):
    a = synth_clips(tmp_path / "a", clips=3, frames=4, size=(64, 48), seed=5)
    b = synth_clips(tmp_path / "b", clips=3, frames=4, size=(64, 48), seed=5)
    c = synth_clips(tmp_path / "c", clips=3, frames=4, size=(64, 48), seed=6)
    for x, y, z in zip(a, b, c):
        fx, fy, fz = _frames(x), _frames(y), _frames(z)
        assert len(fx) == 4 and fx[0].shape == (48, 64, 3)
        assert all(np.array_equal(p, q) for p, q in zip(fx, fy))
        assert not all(np.array_equal(p, q) for p, q in zip(fx, fz))
        assert json.loads((x / "motion.json").read_text())["motion"] == json.loads((y / "motion.json").read_text())[
            "motion"]
    # clip i depends on (seed, i) only: fewer clips, same first clip
    d = synth_clips(tmp_path / "d", clips=1, frames=4, size=(64, 48), seed=5)
    assert all(np.array_equal(p, q) for p, q in zip(_frames(a[0]), _frames(d[0])))


def test_a_known_pan_is_recovered(tmp_path):
    """Pure pan at 1.3 px/frame in a random direction: the content moves by -velocity per frame. A brute-force search
    (frame t shifted by OpenCV on a 0.1-pixel grid, the shift whose result is closest to frame t+1) and the DIS flow
    both measure it."""
    (folder,) = synth_clips(tmp_path, clips=1, frames=3, size=(96, 80), seed=3, ranges=PAN_ONLY)
    motion = json.loads((folder / "motion.json").read_text())["motion"]
    vx, vy = motion["velocity"]
    assert np.hypot(vx, vy) == pytest.approx(1.3)
    frames = _frames(folder)
    a, b = (f.astype(np.float32) for f in frames[:2])
    grid = np.round(np.arange(-2.0, 2.01, 0.1), 1)
    inner = (slice(8, -8), slice(8, -8))

    def error(sx, sy):
        moved = cv2.warpAffine(a, np.float32([[1, 0, sx], [0, 1, sy]]), (96, 80), flags=cv2.INTER_CUBIC)
        return float(np.mean((moved[inner] - b[inner]) ** 2))

    best = min(((sx, sy) for sx in grid for sy in grid), key=lambda s: error(*s))
    assert best == pytest.approx((-vx, -vy), abs=0.11)
    # DIS: frame t(x) ~ frame t+1(x + flow), so flow ~ -velocity away from the borders
    flow = flow_between(frames[0], frames[1])[inner]
    assert np.median(flow[..., 0]) == pytest.approx(-vx, abs=0.15)
    assert np.median(flow[..., 1]) == pytest.approx(-vy, abs=0.15)


def test_zoom_rotation_and_foreground_follow_the_matrices():
    rng = np.random.default_rng(0)
    ranges = MotionRange(max_zoom=0.01, max_rotation=0.5, foreground=1.0)
    motion = draw_motion(rng, "x", (400, 300), (96, 64), 6, ranges)
    assert motion.foreground_box is not None
    m0, m5 = motion.matrix(0, (96, 64)), motion.matrix(5, (96, 64))
    scale5 = np.sqrt(abs(np.linalg.det(m5[:, :2])))
    assert scale5 == pytest.approx((1 + motion.zoom) ** 5)
    angle5 = np.degrees(np.arctan2(m5[1, 0], m5[0, 0]))
    assert angle5 == pytest.approx(5 * motion.rotation)
    assert np.allclose(m0[:, :2], np.eye(2))
    photo = cv2.GaussianBlur((np.random.default_rng(1).random((300, 400, 3)) * 255).astype(np.uint8), (0, 0), 4)
    frames = render_clip(photo, motion, (96, 64), 6)
    # the foreground's centre pixel shows the crop at the position its velocity says (bilinear reference sample)
    x, y, fw, fh = motion.foreground_box
    crop = photo[y:y + fh, x:x + fw].astype(np.float64)
    for t in (0, 5):
        ox = motion.foreground_start[0] + t * motion.foreground_velocity[0]
        oy = motion.foreground_start[1] + t * motion.foreground_velocity[1]
        cx, cy = int(round(ox + fw / 2)), int(round(oy + fh / 2))
        px, py = cx - ox, cy - oy
        x0, y0 = int(px), int(py)
        fx, fy = px - x0, py - y0
        ref = ((1 - fx) * (1 - fy) * crop[y0, x0] + fx * (1 - fy) * crop[y0, x0 + 1]
               + (1 - fx) * fy * crop[y0 + 1, x0] + fx * fy * crop[y0 + 1, x0 + 1])
        assert np.abs(frames[t][cy, cx] - ref).max() <= 2


def _shifted_pair(shift=(2, 1)):
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((80, 96, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
    dx, dy = shift
    ref = base[10:58, 10:74]
    supp = base[10 - dy:58 - dy, 10 - dx:74 - dx]     # content moved by +shift: ref(x) = supp(x + shift)
    return ref, supp


def test_dis_flow_convention_matches_flow_warp():
    ref, supp = _shifted_pair((2, 1))
    flow = flow_between(ref, supp)
    inner = flow[8:-8, 8:-8]
    assert np.median(inner[..., 0]) == pytest.approx(2, abs=0.1)
    assert np.median(inner[..., 1]) == pytest.approx(1, abs=0.1)
    warped = flow_warp(torch.from_numpy(supp).permute(2, 0, 1)[None].float(), torch.from_numpy(flow)[None])
    err = (warped[0].permute(1, 2, 0).numpy() - ref)[8:-8, 8:-8]
    assert np.abs(err).mean() < 2.0


@pytest.mark.parametrize("k", range(8))
def test_augmented_flows_warp_augmented_frames(k):
    """Warping then transforming equals transforming frames and flows then warping (exact on the pixel grid)."""
    rng = np.random.default_rng(k)
    supp = rng.random((1, 12, 10, 3)).astype(np.float32)
    flow = (rng.random((1, 12, 10, 2)).astype(np.float32) - 0.5) * 4

    def warp(frames, flows):
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        return flow_warp(x, torch.from_numpy(np.ascontiguousarray(flows))).permute(0, 2, 3, 1).numpy()

    expected = augment_sequence(warp(supp, flow), k)
    got = warp(augment_sequence(supp, k), augment_flows(flow, k))
    assert np.allclose(got, expected, atol=1e-5)


def test_reversed_clip_flows_are_the_swapped_reversed_flows():
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur((rng.random((40, 48, 3)) * 255).astype(np.uint8), (5, 5), 1.5) for _ in range(4)]
    fwd, bwd = clip_flows(frames)
    rfwd, rbwd = clip_flows(frames[::-1])
    sfwd, sbwd = reverse_flows(fwd, bwd)
    assert np.array_equal(sfwd, rfwd) and np.array_equal(sbwd, rbwd)


def test_downscale_flow_is_block_mean_over_factor():
    flow = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8)
    small = downscale_flow(flow, 4)
    assert small.shape == (1, 2, 2, 2)
    assert small[0, 1, 1, 0].item() == pytest.approx(flow[0, 1, 4:8, 0:4].mean().item() / 4)
    with pytest.raises(ValueError):
        downscale_flow(torch.zeros(1, 2, 6, 8), 4)


@pytest.mark.slow
def test_basicvsrpp_dis_flow_source_equals_given_flows():
    from ntirekit.nn.dis_flow import tensor_clip_flows
    from ntirekit.models.basicvsrpp import BasicVSRPlusPlus, PQFBasicVSRPlusPlus

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = np.stack([cv2.GaussianBlur((rng.random((32, 48, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
                       for _ in range(3)])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255
    for cls in (BasicVSRPlusPlus, PQFBasicVSRPlusPlus):
        model = cls(mid_channels=8, num_blocks=1, is_low_res_input=False, num_blocks_reconstruction=1, flow="dis",
                    hr_channels=8).eval()
        assert model.min_input_size == 32 and model.conv_hr.weight.shape == (8, 8, 3, 3)
        with torch.no_grad():
            own = model(x)
            flows = tensor_clip_flows(x)
            given = model(x, flows=flows)
            zero = model(x, flows=(torch.zeros_like(flows[0]), torch.zeros_like(flows[1])))
        assert own.shape == x.shape
        assert torch.equal(own, given)
        assert not torch.allclose(own, zero)
    fwd, bwd = clip_flows(list(frames))
    assert torch.equal(flows[0][0], torch.from_numpy(fwd).permute(0, 3, 1, 2))
    assert torch.equal(flows[1][0], torch.from_numpy(bwd).permute(0, 3, 1, 2))
