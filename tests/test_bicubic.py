"""MATLAB-exact bicubic: against MATLAB's own Set5 x4 LR, hand-computed weights, and a plain-loop reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ntirekit.data.bicubic import contributions, cubic, imresize
from ntirekit.data.images import modcrop, read_image

SET5 = ("baby", "bird", "butterfly", "head", "woman")


@pytest.mark.parametrize("name", SET5)
def test_reproduces_matlab_set5_x4(set5_dir: Path, name: str) -> None:
    hr = modcrop(read_image(set5_dir / "HR" / f"{name}.bmp"), 4)
    matlab = read_image(set5_dir / "LR_bicubic" / "X4" / f"{name}x4.bmp")
    ours = imresize(hr, 0.25)
    assert ours.dtype == np.uint8 and ours.shape == matlab.shape
    diff = np.abs(ours.astype(int) - matlab.astype(int))
    assert diff.max() <= 1
    assert np.mean(diff > 0) <= 0.002          # measured: 0 pixels differ on all five images
    # without rounding after each pass ~10 % of pixels would differ: the test can tell the two apart
    unrounded = np.clip(np.floor(imresize(hr.astype(np.float64), 0.25) + 0.5), 0, 255)
    assert np.mean(unrounded != matlab) > 0.05


def test_cubic_kernel_values() -> None:
    assert cubic(np.array([0.0, 1.0, 2.0, 2.5, -1.0]))[:].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    # Keys a=-0.5 at 0.5 and 1.5: 0.5625 and -0.0625
    assert cubic(np.array([0.5, -1.5])).tolist() == [0.5625, -0.0625]


def test_weights_for_x2_upscaling_by_hand() -> None:
    # output pixel 2 of a x2 upscale samples u = 2/2 + 0.5 * (1 - 1/2) = 1.25 (1-based): taps at 0, 1, 2, 3 (1-based),
    # distances 1.25, 0.25, -0.75, -1.75 -> the classic [-0.0703125, 0.8671875, 0.2265625, -0.0234375]
    w, idx = contributions(8, 16, 2.0)
    assert w.shape == (16, 4)
    np.testing.assert_array_equal(w[1], [-0.0703125, 0.8671875, 0.2265625, -0.0234375])
    # 1-based taps 0 and 1 mirror to the first pixel: symmetric padding repeats the edge
    assert idx[1].tolist() == [0, 0, 1, 2]


@pytest.mark.parametrize("n_in,n_out,scale", [(16, 4, 0.25), (17, 5, 0.3), (9, 27, 3.0), (10, 7, 0.7), (5, 5, 1.0)])
def test_weights_sum_to_one_and_indices_in_range(n_in: int, n_out: int, scale: float) -> None:
    w, idx = contributions(n_in, n_out, scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert idx.min() >= 0 and idx.max() < n_in


def test_x4_downscale_weights_are_symmetric_with_widened_kernel() -> None:
    w, _ = contributions(64, 16, 0.25)
    assert w.shape[1] == 16                 # kernel width 4 / 0.25 = 16 taps with nonzero weight
    np.testing.assert_allclose(w[8], w[8][::-1], atol=1e-15)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@pytest.mark.parametrize("shape,kw", [((31, 17), {"scale": 0.25}), ((12, 9, 3), {"scale": 3}),
                                      ((20, 30, 2), {"output_shape": (7, 41)})])
def test_constant_image_stays_constant(dtype: type, shape: tuple[int, ...], kw: dict) -> None:
    img = np.full(shape, 77, dtype=dtype)
    out = imresize(img, **kw)
    assert out.dtype == (np.uint8 if dtype == np.uint8 else np.float64)
    np.testing.assert_allclose(out, 77, rtol=0, atol=1e-12)


def test_ramp_downscale_is_the_block_mean_inside() -> None:
    # f(i) = i; output k samples 0-based position 4k + 1.5 with symmetric weights -> exactly 4k + 1.5 away from edges
    ramp = np.tile(np.arange(64, dtype=np.float64), (3, 1))
    out = imresize(ramp, output_shape=(3, 16))
    inner = np.arange(2, 14)
    np.testing.assert_allclose(out[1, inner], 4 * inner + 1.5, rtol=0, atol=1e-12)
    # at the edges the mirrored pixels are not on the line any more
    assert abs(out[1, 0] - 1.5) > 0.01 and abs(out[1, -1] - (4 * 15 + 1.5)) > 0.01


def test_ramp_upscale_reproduces_the_line() -> None:
    # x2 up: output k (0-based) samples 1-based u = (k+1)/2 + 0.25, i.e. 0-based position k/2 - 0.25;
    # cubic convolution reproduces linear functions
    ramp = np.arange(20, dtype=np.float64)[:, None]
    out = imresize(ramp, output_shape=(40, 1))
    k = np.arange(4, 36)
    np.testing.assert_allclose(out[k, 0], k / 2 - 0.25, rtol=0, atol=1e-12)


def test_output_size_rules() -> None:
    img = np.zeros((10, 7, 3), np.uint8)
    assert imresize(img, 0.25).shape == (3, 2, 3)          # MATLAB: ceil(scale * size)
    assert imresize(img, (0.5, 2)).shape == (5, 14, 3)
    assert imresize(img[:, :, 0], output_shape=(4, 9)).shape == (4, 9)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 0.5, output_shape=(5, 4))


# ---- an independent, deliberately naive reference: MATLAB's imresize written out with loops -------------------

def _naive_axis(img: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Resize axis 0 of a float array with explicit loops: MATLAB's contributions() and resizeAlongDim()."""
    n = img.shape[0]
    kw = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros((out_len,) + img.shape[1:])
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kw / 2)
        taps = [left + p for p in range(math.ceil(kw) + 2)]
        ws = []
        for j in taps:
            d = u - j
            ws.append(scale * float(cubic(np.array(d * scale))) if scale < 1 else float(cubic(np.array(d))))
        total = sum(ws)
        acc = np.zeros(img.shape[1:])
        for j, wgt in zip(taps, ws):
            if wgt == 0:
                continue
            k = j
            while k < 1 or k > n:               # mirror with the edge repeated
                k = 1 - k if k < 1 else 2 * n + 1 - k
            acc = acc + (wgt / total) * img[k - 1]
        out[x - 1] = acc
    return out


def _naive_imresize(img: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    a = img.astype(np.float64)
    scales = [out_shape[0] / img.shape[0], out_shape[1] / img.shape[1]]
    order = [0, 1] if scales[0] <= scales[1] else [1, 0]
    for axis in order:
        if out_shape[axis] == a.shape[axis]:
            continue
        a = np.moveaxis(_naive_axis(np.moveaxis(a, axis, 0), out_shape[axis], scales[axis]), 0, axis)
        if img.dtype == np.uint8:
            a = np.clip(np.floor(a + 0.5), 0, 255)
    return a


@pytest.mark.parametrize("in_shape,out_shape", [((23, 18, 3), (6, 5)), ((9, 14), (20, 33)), ((17, 11, 3), (40, 4)),
                                                ((8, 30, 3), (8, 9)), ((13, 13), (5, 22)),
                                                ((3, 4, 3), (1, 1))])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_matches_naive_reference(in_shape: tuple[int, ...], out_shape: tuple[int, int], dtype: type) -> None:
    rng = np.random.default_rng(sum(in_shape) + sum(out_shape))
    img = rng.integers(0, 256, in_shape).astype(dtype)
    if dtype == np.float64:
        img = img / 255.0
    ours = imresize(img, output_shape=out_shape)
    ref = _naive_imresize(img, out_shape)
    if dtype == np.uint8:
        # the two sum the same products in a different order: a tie at .5 may round differently, nothing else
        assert np.abs(ours.astype(int) - ref).max() <= 1 and np.mean(ours != ref) < 0.01
    else:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_uint16_keeps_its_dtype_and_range() -> None:
    img = np.zeros((16, 16), np.uint16)
    img[4:12, 4:12] = 65535
    out = imresize(img, 0.5)
    assert out.dtype == np.uint16 and out.max() == 65535 and out.min() == 0


@pytest.mark.parametrize("low", [0, 2, 100])
def test_uint8_ties_round_half_away_from_zero(low: int) -> None:
    # x2 down of columns alternating low, low+1: symmetric weights give exactly low + 0.5 inside; MATLAB's uint8
    # conversion rounds that up (numpy's round-half-to-even would give low for even low)
    img = (np.tile(np.array([0, 1]), 16)[None].repeat(4, axis=0) + low).astype(np.uint8)
    exact = imresize(img.astype(np.float64), output_shape=(4, 16))
    np.testing.assert_array_equal(exact[:, 2:-2], low + 0.5)
    np.testing.assert_array_equal(imresize(img, output_shape=(4, 16))[:, 2:-2], low + 1)
