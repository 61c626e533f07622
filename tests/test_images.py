"""Image I/O, dataset layouts and the embedded sample set."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ntirekit.data import DataError
from ntirekit.data.bicubic import imresize
from ntirekit.data.images import (ImagePair, make_lr, modcrop, open_image_dataset, read_image, sample_dataset,
                                  write_image)
from ntirekit.data.sample import SAMPLE_NAMES, div2k_like_inputs


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------------ read/write

def test_read_image_is_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((3, 4, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)                  # blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    img = read_image(tmp_path / "blue.png")
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert img[0, 0].tolist() == [0, 0, 255]


def test_read_set5_bmp_matches_cv2(set5_dir: Path) -> None:
    path = set5_dir / "HR" / "woman.bmp"
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path))[:, :, ::-1])


def test_exif_orientation_is_applied_like_the_harness(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255
    im = pil.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6                                         # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    ours = read_image(tmp_path / "rot.jpg")
    assert ours.shape == (40, 20, 3)
    np.testing.assert_array_equal(ours, cv2.imread(str(tmp_path / "rot.jpg"))[:, :, ::-1])


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    img = _rgb(5, 7)
    out = write_image(tmp_path / "sub" / "dir" / "x.png", img)
    np.testing.assert_array_equal(read_image(out), img)
    np.testing.assert_array_equal(cv2.imread(str(out))[:, :, ::-1], img)    # written as RGB, not BGR


def test_grayscale_becomes_three_channels(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray)


def test_sixteen_bit_is_scaled_to_eight(tmp_path: Path) -> None:
    k = np.array([[0, 1, 128], [200, 254, 255]], np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), np.stack([k * 257] * 3, axis=-1))
    img = read_image(tmp_path / "c16.png")
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, :, 0], k)


def test_alpha_is_dropped(tmp_path: Path) -> None:
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = 200                       # red
    bgra[..., 3] = 10                        # nearly transparent
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_corrupt_file_is_a_one_line_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken.png") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_folder_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError):
        read_image(tmp_path)


def test_write_image_rejects_float(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="uint8"):
        write_image(tmp_path / "f.png", np.zeros((2, 2, 3)))


def test_modcrop() -> None:
    img = np.zeros((37, 50, 3))
    assert modcrop(img, 4).shape == (36, 48, 3)
    assert modcrop(img, 1).shape == img.shape


# ------------------------------------------------------------------------------------------------------ layouts

def test_generic_hr_lr_folders_set5(set5_dir: Path) -> None:
    ds = open_image_dataset(set5_dir, scale=4)
    assert ds.name == "Set5" and ds.scale == 4 and len(ds) == 5 and ds.has_hr and not ds.lr_made
    assert ds.names == ["baby", "bird", "butterfly", "head", "woman"]
    pairs = list(ds)
    assert all(isinstance(p, ImagePair) for p in pairs)
    for p in pairs:
        assert p.hr.shape == (p.lr.shape[0] * 4, p.lr.shape[1] * 4, 3)
        np.testing.assert_array_equal(p.lr, read_image(set5_dir / "LR_bicubic" / "X4" / f"{p.name}x4.bmp"))
        np.testing.assert_array_equal(p.hr, modcrop(read_image(set5_dir / "HR" / f"{p.name}.bmp"), 4))
    assert ds[-1].name == "woman" and ds["bird"].name == "bird"
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(KeyError):
        ds["lena"]


def test_hr_only_folder_makes_lr_with_bicubic(tmp_path: Path) -> None:
    hr = _rgb(37, 50)                      # odd sizes: mod-cropped to 36x48
    write_image(tmp_path / "odd.png", hr)
    write_image(tmp_path / "even.png", _rgb(32, 16, 1))
    ds = open_image_dataset(tmp_path)
    assert ds.lr_made and ds.names == ["even", "odd"]
    pair = ds["odd"]
    np.testing.assert_array_equal(pair.hr, hr[:36, :48])
    np.testing.assert_array_equal(pair.lr, imresize(hr[:36, :48], 0.25))
    assert pair.lr.shape == (9, 12, 3)


def _div2k(root: Path, split: str, names: list[str], hr: bool = True, lr: str | None = "{p}_{s}_LR",
           prefix: str = "DIV2K") -> dict[str, np.ndarray]:
    images = {}
    for i, n in enumerate(names):
        img = _rgb(24, 32, i)
        images[n] = img
        if hr:
            write_image(root / f"{prefix}_{split}_HR" / f"{n}.png", img)
        if lr:
            write_image(root / lr.format(p=prefix, s=split) / f"{n}x4.png", make_lr(img, 4))
    return images


@pytest.mark.parametrize("lr_folder", ["{p}_{s}_LR", "{p}_{s}_LR_bicubic/X4"])
def test_div2k_layouts(tmp_path: Path, lr_folder: str) -> None:
    images = _div2k(tmp_path, "valid", ["0801", "0802", "0803"], lr=lr_folder)
    ds = open_image_dataset(tmp_path, split="valid")
    assert ds.name == "DIV2K_valid" and ds.names == ["0801", "0802", "0803"] and not ds.lr_made
    for pair in ds:
        np.testing.assert_array_equal(pair.hr, images[pair.name])
        np.testing.assert_array_equal(pair.lr, make_lr(images[pair.name], 4))


def test_div2k_test_split_may_be_lr_only(tmp_path: Path) -> None:
    _div2k(tmp_path, "valid", ["0801"])
    _div2k(tmp_path, "test", ["0901", "0902"], hr=False)
    ds = open_image_dataset(tmp_path, split="test")
    assert ds.names == ["0901", "0902"] and not ds.has_hr
    pair = ds[0]
    assert pair.hr is None and pair.lr.shape == (6, 8, 3)


def test_div2k_lsdir_layout_wins(tmp_path: Path) -> None:
    _div2k(tmp_path, "valid", ["0801"])
    _div2k(tmp_path, "valid", ["0001", "LSDIR_0000002"], prefix="DIV2K_LSDIR")
    ds = open_image_dataset(tmp_path)
    assert ds.name == "DIV2K_LSDIR_valid" and ds.names == ["0001", "LSDIR_0000002"]


def test_div2k_unknown_split_is_a_data_error(tmp_path: Path) -> None:
    _div2k(tmp_path, "valid", ["0801"])
    with pytest.raises(DataError, match="split 'test'"):
        open_image_dataset(tmp_path, split="test")


def test_missing_lr_is_a_data_error(tmp_path: Path) -> None:
    _div2k(tmp_path, "valid", ["0801", "0802"])
    (tmp_path / "DIV2K_valid_LR" / "0802x4.png").unlink()
    with pytest.raises(DataError, match="no LR image for HR 0802"):
        open_image_dataset(tmp_path)


def test_missing_hr_is_a_data_error(tmp_path: Path) -> None:
    _div2k(tmp_path, "valid", ["0801", "0802"])
    (tmp_path / "DIV2K_valid_HR" / "0801.png").unlink()
    with pytest.raises(DataError, match="no HR image for LR 0801"):
        open_image_dataset(tmp_path)


def test_lr_hr_size_mismatch_is_a_data_error(tmp_path: Path) -> None:
    write_image(tmp_path / "HR" / "a.png", _rgb(24, 32))
    write_image(tmp_path / "LR_bicubic" / "X4" / "ax4.png", _rgb(5, 8))
    ds = open_image_dataset(tmp_path)
    with pytest.raises(DataError, match="does not match HR"):
        ds[0]


def test_empty_folders_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        open_image_dataset(tmp_path)
    (tmp_path / "HR").mkdir()
    with pytest.raises(DataError, match="no image files"):
        open_image_dataset(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        open_image_dataset(tmp_path / "absent")


def test_loading_is_lazy(tmp_path: Path) -> None:
    write_image(tmp_path / "good.png", _rgb(8, 8))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    ds = open_image_dataset(tmp_path)          # listing only: the broken file is not read yet
    assert len(ds) == 2
    assert ds["good"].lr.shape == (2, 2, 3)
    with pytest.raises(DataError, match="bad.png"):
        ds["bad"]


def test_lr_only_folder(set5_dir: Path) -> None:
    ds = open_image_dataset(set5_dir / "LR_bicubic" / "X4")
    assert ds.name == "Set5" and ds.names[0] == "baby" and not ds.has_hr
    assert ds[0].hr is None and ds[0].lr.shape == (128, 128, 3)


# ------------------------------------------------------------------------------------------------------ sample

def test_sample_dataset() -> None:
    ds = open_image_dataset("sample")
    assert ds.name == "sample" and 4 <= len(ds) <= 6 and ds.names == list(SAMPLE_NAMES)
    for pair in ds:
        assert pair.hr.dtype == np.uint8 and pair.hr.shape[0] % 4 == 0 and pair.hr.shape[1] % 4 == 0
        assert pair.hr.shape == (pair.lr.shape[0] * 4, pair.lr.shape[1] * 4, 3)
        assert pair.hr.std() > 20                            # a real photo, not a flat image
    assert sample_dataset(2)[0].lr.shape == (256, 256, 3)


def test_div2k_like_inputs() -> None:
    inputs = div2k_like_inputs()
    assert len(inputs) == 6
    shapes = [x.shape for x in inputs]
    assert (339, 510, 3) in shapes and (510, 339, 3) in shapes
    for x in inputs:
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        assert max(x.shape[:2]) == 510 and 300 <= min(x.shape[:2]) <= 360
        assert x.std() > 10
    again = div2k_like_inputs()
    assert all(np.array_equal(a, b) for a, b in zip(inputs, again))
    other = div2k_like_inputs(seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(inputs, other) if a.shape == b.shape)
    assert len(div2k_like_inputs(2)) == 2
