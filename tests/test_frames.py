"""Frame analysis: duplicate frames, PQF positions (from QPs, a period, per-frame quality)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ntirekit.data.compress import hm_ldp_qps
from ntirekit.data.frames import (drop_duplicates, duplicate_mask, find_pqf, frame_psnr, positions_after_drop,
                                  pqf_positions, quality_proxy, restore_duplicates)


def _frames(pattern: list[int]) -> list[np.ndarray]:
    """Frames whose content is given by a label: equal labels give byte-identical frames."""
    return [np.full((3, 4, 3), label, np.uint8) for label in pattern]


def test_duplicate_mask_is_exact_equality_with_the_previous_frame():
    frames = _frames([0, 0, 1, 2, 2, 2, 1])
    assert duplicate_mask(frames) == [False, True, False, False, True, True, False]
    almost = [frames[0], frames[0].copy()]
    almost[1][0, 0, 0] = 1  # one sample differs by one
    assert duplicate_mask(almost) == [False, False]
    assert duplicate_mask([]) == []
    assert duplicate_mask([np.zeros((2, 2, 3)), np.zeros((3, 2, 3))]) == [False, False]


def test_drop_and_restore_round_trip():
    pattern = [5, 5, 6, 7, 7, 7, 8, 5]
    frames = _frames(pattern)
    unique, index_map = drop_duplicates(frames)
    assert [int(f[0, 0, 0]) for f in unique] == [5, 6, 7, 8, 5]  # 5 again at the end is not a *consecutive* repeat
    assert index_map == [0, 0, 1, 2, 2, 2, 3, 4]

    enhanced = [f.astype(np.int16) * 10 for f in unique]  # stand-in for a model's output
    restored = restore_duplicates(enhanced, index_map)
    assert [int(f[0, 0, 0]) for f in restored] == [p * 10 for p in pattern]
    restored[1][0, 0, 0] = -1  # copies, not views of the enhanced frame before
    assert enhanced[0][0, 0, 0] == 50 and restored[0][0, 0, 0] == 50

    stacked = torch.stack([torch.from_numpy(f) for f in enhanced])  # a tensor N×H×W×C comes back as a tensor
    out = restore_duplicates(stacked, index_map)
    assert isinstance(out, torch.Tensor) and out.shape[0] == len(pattern)
    assert out[:, 0, 0, 0].tolist() == [p * 10 for p in pattern]
    array_out = restore_duplicates(np.stack(enhanced), index_map)
    assert array_out[:, 0, 0, 0].tolist() == [p * 10 for p in pattern]

    with pytest.raises(ValueError, match="outside"):
        restore_duplicates(enhanced[:2], index_map)
    assert positions_after_drop([0, 4, 6], index_map) == [0, 2, 3]


def test_pqf_from_qps_hm_pattern():
    qps = hm_ldp_qps(17)
    est = find_pqf(17, qps=qps)
    assert est.positions == [0, 4, 8, 12, 16] and est.method == "qp" and est.period == 4
    assert pqf_positions(17, qps=qps) == [0, 4, 8, 12, 16]
    # frame 2 of each GOP (QP 44) is a local QP minimum but not a PQF
    assert 2 not in est.positions
    # a clip cut mid-GOP: frame 0 is not an I frame
    assert pqf_positions(9, qps=qps[3:12]) == [1, 5]
    # period 2 and 8 configurations
    assert pqf_positions(9, qps=hm_ldp_qps(9, period=2)) == [0, 2, 4, 6, 8]
    assert pqf_positions(17, qps=hm_ldp_qps(17, period=8)) == [0, 8, 16]
    # I frame above the PQFs (some encoders): still found from the non-I frames
    assert pqf_positions(6, qps=[40, 45, 44, 45, 38, 45]) == [4]


def test_pqf_constant_qps_fall_back_to_period_or_quality():
    est = find_pqf(8, qps=[32] * 8, period=4)
    assert est.positions == [0, 4] and est.method == "period"
    est = find_pqf(8, qps=[27] + [32] * 7)
    assert est.positions == [] and est.method == "none" and "constant" in est.detail
    with pytest.raises(ValueError, match="QPs for"):
        find_pqf(5, qps=[37, 45])


def test_pqf_from_period_and_argument_errors():
    assert pqf_positions(10, period=4) == [0, 4, 8]
    assert pqf_positions(3, period=4) == [0]
    assert pqf_positions(1, qps=[37]) == [0]
    assert pqf_positions(0, period=4) == []
    with pytest.raises(ValueError, match="give qps, period or frame_psnr"):
        pqf_positions(10)
    with pytest.raises(ValueError, match="period"):
        pqf_positions(10, period=0)


def _quality(n: int, period: int, phase: int, gain: float, seed: int = 0) -> list[float]:
    """A drifting per-frame PSNR with noise and a gain on the PQFs (an extra-good I frame at 0)."""
    rng = np.random.default_rng(seed)
    base = 30 + 1.5 * np.sin(np.arange(n) / 7.0) + rng.normal(0, 0.25, n)
    base[(np.arange(n) - phase) % period == 0] += gain
    base[0] += 3.0
    return base.tolist()


@pytest.mark.parametrize("period,phase", [(4, 0), (2, 0), (8, 0), (4, 2), (3, 1)])
def test_pqf_estimated_from_psnr(period, phase):
    n = 40
    est = find_pqf(n, frame_psnr=_quality(n, period, phase, gain=2.0))
    assert est.method == "quality" and est.period == period
    assert est.positions == list(range(phase, n, period))


def test_pqf_estimate_on_noise_finds_nothing_and_inf_is_handled():
    rng = np.random.default_rng(3)
    est = find_pqf(30, frame_psnr=(30 + rng.normal(0, 0.3, 30)).tolist())
    assert est.positions == [] and est.method == "none" and "t =" in est.detail
    q = _quality(24, 4, 0, gain=2.0)
    q[8] = math.inf  # a lossless frame
    assert pqf_positions(24, frame_psnr=q) == [0, 4, 8, 12, 16, 20]
    assert find_pqf(4, frame_psnr=[30, 31, 30, 31]).method == "none"  # too short to tell


def test_qps_take_precedence_over_period_and_quality():
    qps = hm_ldp_qps(12)
    est = find_pqf(12, qps=qps, period=3, frame_psnr=_quality(12, 2, 1, 3.0))
    assert est.method == "qp" and est.positions == [0, 4, 8]


def test_frame_psnr_and_proxy():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # MSE = 255² / 48
    assert frame_psnr([a, a], [a, b]) == [math.inf, pytest.approx(10 * math.log10(48))]
    with pytest.raises(ValueError):
        frame_psnr([a], [a, b])
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    smooth = np.full_like(sharp, 128)
    proxy = quality_proxy([sharp, smooth])
    assert proxy[0] > proxy[1] == 0.0
