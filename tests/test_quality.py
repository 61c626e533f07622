"""PSNR/SSIM under both protocols, the harness's tensor conversions and per-video aggregation, checked against
hand-computed values and independent implementations (scikit-image's SSIM, published bicubic figures)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ntirekit.data import imresize, open_image_dataset
from ntirekit.quality import (mean_over_videos, mse, psnr, rgb_to_y, ssim, to_model_input, to_uint8_output,
                              video_psnr)


def _photo_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 'HR' and a noisy 'SR' version of it, uint8 RGB 40x52."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:40, 0:52]
    hr = np.stack([120 + 80 * np.sin(xx / 7.0), 100 + 60 * np.cos(yy / 5.0), 50 + xx + yy], axis=-1)
    sr = hr + rng.normal(0, 8, hr.shape)
    return np.clip(np.round(sr), 0, 255).astype(np.uint8), np.clip(np.round(hr), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------ PSNR

def test_challenge_psnr_known_mse() -> None:
    hr = np.zeros((12, 12, 3), np.uint8)
    sr = np.full((12, 12, 3), 10, np.uint8)
    assert mse(sr, hr, border=0) == 100.0
    assert psnr(sr, hr, border=0) == pytest.approx(20 * math.log10(25.5), abs=1e-12)
    # one channel off by 6 everywhere: MSE over HxWx3 = 36 / 3 = 12
    sr2 = hr.copy()
    sr2[..., 0] = 6
    assert psnr(sr2, hr, protocol="challenge", border=2) == pytest.approx(10 * math.log10(255 ** 2 / 12), abs=1e-12)


def test_uint8_arithmetic_does_not_wrap() -> None:
    hr = np.full((8, 8, 3), 200, np.uint8)
    sr = np.full((8, 8, 3), 10, np.uint8)         # 10 - 200 would wrap around in uint8
    assert mse(sr, hr, border=0) == 190.0 ** 2


def test_border_is_shaved_on_every_side() -> None:
    hr = np.full((20, 24, 3), 128, np.uint8)
    for region in [np.s_[:4, :], np.s_[-4:, :], np.s_[:, :4], np.s_[:, -4:]]:
        sr = hr.copy()
        sr[region] = 0
        assert psnr(sr, hr, border=4) == math.inf
        assert psnr(sr, hr, protocol="paper", border=4) == math.inf
        assert math.isfinite(psnr(sr, hr, border=3))


def test_identical_images_give_inf() -> None:
    img = _photo_pair()[1]
    assert psnr(img, img, border=4) == math.inf
    assert psnr(img, img, protocol="paper", border=0) == math.inf


def test_rgb_to_y_known_colours() -> None:
    colours = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    expected = [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]
    np.testing.assert_allclose(rgb_to_y(colours)[0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(colours / 255.0)[0], expected, rtol=0, atol=1e-9)   # float read as [0, 1]
    assert rgb_to_y(colours).dtype == np.float64
    # not rounded: mid grey 128 -> 16 + 219 * 128 / 255
    assert rgb_to_y(np.full((1, 1, 3), 128, np.uint8))[0, 0] == pytest.approx(16 + 219 * 128 / 255, abs=1e-9)


def test_paper_psnr_on_luma_only() -> None:
    hr = np.full((10, 10, 3), 100, np.uint8)
    sr = hr.copy()
    sr[..., 2] += 51                  # blue +0.2 -> Y + 0.2 * 24.966
    dy = 0.2 * 24.966
    assert psnr(sr, hr, protocol="paper", border=0) == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)
    # a mostly-chroma change (R up, B down) moves Y by only 40 * (65.481 - 24.966) / 255: Y sees far less than RGB
    sr2 = hr.copy()
    sr2[..., 0] += 40
    sr2[..., 2] -= 40
    assert psnr(sr2, hr, protocol="paper", border=0) > psnr(sr2, hr, protocol="challenge", border=0) + 5


def test_paper_psnr_of_bicubic_on_set5_matches_published(set5_dir: Path) -> None:
    # SR papers' "Bicubic" row for Set5 x4 (Y, border 4): 28.42 dB / SSIM 0.8104 (MATLAB's ssim differs slightly)
    ds = open_image_dataset(set5_dir, scale=4)
    psnrs, ssims = [], []
    for pair in ds:
        sr = imresize(pair.lr, 4)
        psnrs.append(psnr(sr, pair.hr, protocol="paper", border=4))
        ssims.append(ssim(sr, pair.hr, protocol="paper", border=4))
    assert np.mean(psnrs) == pytest.approx(28.42, abs=0.02)
    assert np.mean(ssims) == pytest.approx(0.8104, abs=0.002)


def test_bad_arguments() -> None:
    sr, hr = _photo_pair()
    with pytest.raises(ValueError, match="protocol"):
        psnr(sr, hr, protocol="rgb", border=4)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(sr[:-1], hr, border=4)
    with pytest.raises(TypeError, match="uint8"):
        psnr(sr.astype(np.float64), hr.astype(np.float64), border=4)
    with pytest.raises(ValueError, match="border"):
        psnr(sr, hr, border=20)
    with pytest.raises(TypeError):
        psnr(sr, hr)                           # the border is always explicit


# ------------------------------------------------------------------------------------------------------ SSIM

def test_ssim_identical_is_one() -> None:
    img = _photo_pair()[1]
    assert ssim(img, img, border=4) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img, img, protocol="paper", border=0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("border", [0, 4])
def test_ssim_matches_scikit_image(seed: int, border: int) -> None:
    sr, hr = _photo_pair(seed)
    b = np.s_[border:sr.shape[0] - border, border:sr.shape[1] - border]
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    ref_rgb = structural_similarity(sr[b].astype(np.float64), hr[b].astype(np.float64), channel_axis=2, **kw)
    assert ssim(sr, hr, protocol="challenge", border=border) == pytest.approx(ref_rgb, abs=1e-10)
    ref_y = structural_similarity(rgb_to_y(sr)[b], rgb_to_y(hr)[b], **kw)
    assert ssim(sr, hr, protocol="paper", border=border) == pytest.approx(ref_y, abs=1e-10)
    assert 0.1 < ref_rgb < 0.99


# ------------------------------------------------------------------------------------------------------ tensors

@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_to_model_input(data_range: float) -> None:
    img = np.array([[[0, 128, 255], [1, 2, 3]]], np.uint8)            # 1x2x3
    x = to_model_input(img, data_range, "cpu")
    assert x.shape == (1, 3, 1, 2) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert x[0, :, 0, 0].tolist() == pytest.approx([0.0, 128 * data_range / 255, data_range], rel=1e-6)
    assert x[0, 2, 0, 1].item() == pytest.approx(3 * data_range / 255, rel=1e-6)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_to_uint8_output_clamps_scales_rounds(data_range: float) -> None:
    values = torch.tensor([-0.3, 0.0, 2.4, 2.5, 3.5, 254.6, 255.0, 300.0]) * (data_range / 255.0)
    y = values.view(1, 1, 1, 8).repeat(1, 3, 1, 1)
    out = to_uint8_output(y, data_range)
    assert out.shape == (1, 8, 3) and out.dtype == np.uint8
    # ties go to even (numpy's round, as the harness uses): 2.5 -> 2, 3.5 -> 4
    assert out[0, :, 0].tolist() == [0, 0, 2, 2, 4, 255, 255, 255]
    assert to_uint8_output(y[0], data_range).shape == (1, 8, 3)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_conversions_round_trip(data_range: float) -> None:
    img = np.random.default_rng(3).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8_output(to_model_input(img, data_range), data_range), img)


def test_conversions_reject_bad_input() -> None:
    with pytest.raises(TypeError):
        to_model_input(np.zeros((2, 2, 3)), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        to_model_input(np.zeros((2, 2, 3), np.uint8), 2.0)
    with pytest.raises(ValueError, match="batch"):
        to_uint8_output(torch.zeros(2, 3, 4, 4), 1.0)


# ------------------------------------------------------------------------------------------------------ videos

def test_video_psnr_skips_exact_frames() -> None:
    assert video_psnr([30.0, math.inf, 40.0]) == 35.0
    assert video_psnr([math.inf, math.inf]) == math.inf
    with pytest.raises(ValueError):
        video_psnr([])


def test_mean_over_videos() -> None:
    assert mean_over_videos({"a": 30.0, "b": 33.0}) == 31.5
    assert mean_over_videos([video_psnr([30.0, 32.0]), video_psnr([math.inf, 28.0])]) == 29.5
    with pytest.raises(ValueError):
        mean_over_videos([])
