"""The pipelined psnr track: its exact integer PSNR against the official float64 formula (random and real images),
its device conversions against the harness's, pipelined against serial evaluation, --save-sr and packing the result."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers.entries import write_entry
from ntirekit.cli import main
from ntirekit.data import DataError, imresize, open_image_dataset
from ntirekit.data.images import read_image, write_image
from ntirekit.core.registry import discover
from ntirekit.eval.inference import upscale_image
from ntirekit.pack.checker import check_zip
from ntirekit.pack.packer import pack
from ntirekit.quality import ssim, to_model_input, to_uint8_output
from ntirekit.quality.device import (image_to_tensor, output_to_uint8, psnr_from_sse, psnr_tensor,
                                     squared_error_sum, ssim_tensor)
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.image_pipeline import ImageWriter, model_input, prefetch


def official_psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    """``utils_image.calculate_psnr`` of the NTIRE ESR harness, written out: float64 copies, np.mean."""
    h, w = a.shape[:2]
    a = a[border:h - border, border:w - border].astype(np.float64)
    b = b[border:h - border, border:w - border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _chw(img: np.ndarray) -> torch.Tensor:
    return image_to_tensor(img).contiguous()


# ------------------------------------------------------------------------------------------------ exact PSNR

@pytest.mark.parametrize("seed,shape,border", [(0, (17, 23, 3), 0), (1, (64, 48, 3), 4), (2, (339, 510, 3), 4),
                                               (3, (1356, 2040, 3), 4), (4, (40, 40, 3), 19)])
def test_integer_psnr_equals_official_formula_on_random_images(seed: int, shape: tuple[int, ...], border: int) -> None:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(hr + rng.normal(0, 1 + 20 * seed, shape), 0, 255).astype(np.uint8)
    for sr in (noisy, 255 - hr, rng.integers(0, 256, shape, dtype=np.uint8)):
        ours = psnr_tensor(_chw(sr), _chw(hr), border=border)
        assert abs(ours - official_psnr(sr, hr, border)) <= 1e-12
        assert ours == official_psnr(sr, hr, border)          # in fact bit for bit
    assert psnr_tensor(_chw(hr), _chw(hr), border=border) == math.inf


def test_integer_sum_is_exact_where_float32_is_not() -> None:
    # 0 vs 255 everywhere on a DIV2K-sized image: 8.3e6 values of 65025, a sum float32 cannot hold exactly
    a, b = np.zeros((1356, 2040, 3), np.uint8), np.full((1356, 2040, 3), 255, np.uint8)
    sse, n = squared_error_sum(_chw(a), _chw(b), border=4)
    assert (sse, n) == (65025 * 3 * 1348 * 2032, 3 * 1348 * 2032)
    assert psnr_from_sse(sse, n) == 0.0
    hr = np.full((10, 10, 3), 100, np.uint8)
    sr = hr.copy()
    sr[3, 4, 1] = 0                                         # one value off by 100 (uint8 would wrap)
    assert squared_error_sum(_chw(sr), _chw(hr), border=0) == (10000, 300)


@pytest.mark.parametrize("channels", [1, 3])
def test_integer_sum_equals_int64_numpy_for_every_layout(channels: int) -> None:
    """Channels-first outputs against channels-last views of decoded images (what the track compares), and every
    other pairing, shaved or not, random and extreme values: the same sum as int64 numpy."""
    rng = np.random.default_rng(channels)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(9, 90, 2))
        a = rng.integers(0, 256, (channels, h, w), dtype=np.uint8)
        b = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        if trial % 3 == 0:
            a[:], b[:] = 0, 255
        border = int(rng.integers(0, 4))
        first, last = torch.from_numpy(a), torch.from_numpy(b).permute(2, 0, 1)
        for x, y in ((first, last), (last, first), (first, first.clone()), (last, last.contiguous())):
            cut = (slice(None), slice(border, h - border), slice(border, w - border))
            expected = int(((x.numpy()[cut].astype(np.int64) - y.numpy()[cut].astype(np.int64)) ** 2).sum())
            assert squared_error_sum(x, y, border) == (expected, channels * (h - 2 * border) * (w - 2 * border))


def test_integer_psnr_equals_official_formula_on_set5(set5_dir: Path) -> None:
    ds = open_image_dataset(set5_dir, scale=4)
    for pair in ds:
        sr = imresize(pair.lr, output_shape=pair.hr.shape[:2])            # the bicubic row of the SR papers
        ours = psnr_tensor(_chw(sr), _chw(pair.hr), border=4)
        assert abs(ours - official_psnr(sr, pair.hr, 4)) <= 1e-12, pair.name
    assert len(ds) == 5


def test_paper_protocol_and_ssim_on_the_device_match_numpy() -> None:
    from ntirekit.quality import psnr

    rng = np.random.default_rng(5)
    hr = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    sr = np.clip(hr + rng.normal(0, 9, hr.shape), 0, 255).astype(np.uint8)
    for protocol in ("challenge", "paper"):
        assert psnr_tensor(_chw(sr), _chw(hr), protocol=protocol, border=4) == pytest.approx(
            psnr(sr, hr, protocol=protocol, border=4), abs=1e-10)
        assert ssim_tensor(_chw(sr), _chw(hr), protocol=protocol, border=4) == pytest.approx(
            ssim(sr, hr, protocol=protocol, border=4), abs=1e-12)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_device_conversions_give_the_harness_bits(data_range: float) -> None:
    torch.manual_seed(0)
    y = (torch.rand(1, 3, 37, 53) * 1.4 - 0.2) * data_range
    y[0, 0, :2, :] = torch.arange(106).view(2, 53) / 2 * data_range / 255   # exact halves: round half to even
    expected = to_uint8_output(y, data_range)                              # the harness's tensor2uint
    assert np.array_equal(output_to_uint8(y, data_range).permute(1, 2, 0).numpy(), expected)
    lr = np.random.default_rng(1).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    ref, ours = to_model_input(lr, data_range), model_input(lr, data_range)
    assert torch.equal(ref, ours) and ref.stride() == ours.stride()


# ------------------------------------------------------------------------------------------ pipelined vs serial

@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path]:
    entries = tmp_path / "entries"
    write_entry(entries, "tiny", scale=2, data_range=255.0)
    write_entry(entries, "tiny1", scale=2, data_range=1.0)
    data = tmp_path / "set"
    rng = np.random.default_rng(0)
    for i, name in enumerate(["0801", "0802", "0803", "0804", "0805"]):
        h, w = 24 + 2 * i, 30 - 2 * i
        write_image(data / "HR" / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        write_image(data / "LR_bicubic" / "X2" / f"{name}x2.png", rng.integers(0, 256, (h // 2, w // 2, 3),
                                                                             dtype=np.uint8))
    return entries, data


def test_pipelined_and_serial_records_are_identical(world: tuple[Path, Path], tmp_path: Path) -> None:
    entries, data = world
    registry = discover([entries], include_defaults=False)
    chosen = [registry["tiny"], registry["tiny1"]]
    out = {}
    for label, workers in (("serial", 0), ("pipelined", 2)):
        options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False,
                              extra={"workers": workers, "ssim": True, "save_sr": str(tmp_path / label)})
        torch.manual_seed(0)
        out[label] = run_track(chosen, options, isolate=False)
    assert [r["status"] for r in out["serial"]] == ["ok", "ok"]
    for a, b in zip(out["serial"], out["pipelined"]):
        assert set(a) == set(b)
        assert {k for k in a if a[k] != b[k]} <= {"seconds", "created", "sr_folder", "options"}   # options: workers
        assert a["images"] == b["images"] and a["psnr_db"] == b["psnr_db"] and a["ssim"] == b["ssim"]
    # and both equal the kit's reference path (upscale_image + the float64 formula) image by image
    data_set = open_image_dataset(data, scale=2)
    torch.manual_seed(0)
    models = [entry.load(pretrained=False) for entry in chosen]        # the same random weights, in the same order
    for rec, entry, model in zip(out["serial"], chosen, models):
        assert rec["ssim"] is not None
        for img, pair in zip(rec["images"], data_set):
            sr = upscale_image(model, pair.lr, scale=2, data_range=entry.spec.data_range)
            assert img["psnr_db"] == official_psnr(sr, pair.hr, 2)
            assert img["ssim"] == pytest.approx(ssim(sr, pair.hr, border=2), abs=1e-12)
            for label in out:
                assert np.array_equal(read_image(tmp_path / label / entry.name / f"{pair.name}.png"), sr)


def test_ssim_only_when_asked(world: tuple[Path, Path]) -> None:
    entries, data = world
    entry = discover([entries], include_defaults=False)["tiny"]
    (rec,) = run_track([entry], EvalOptions(track="psnr", data=str(data), device="cpu", progress=False), isolate=False)
    assert rec["status"] == "ok" and rec["ssim"] is None and all(i["ssim"] is None for i in rec["images"])


def test_a_bad_image_is_the_datasets_error_before_any_entry_runs(world: tuple[Path, Path], tmp_path: Path) -> None:
    entries, data = world
    (data / "HR" / "0803.png").write_bytes(b"not a png")
    registry = discover([entries], include_defaults=False)
    with pytest.raises(DataError, match="0803.png"):       # once, not one failed record per entry
        run_track([registry["tiny"], registry["tiny1"]],
                  EvalOptions(track="psnr", data=str(data), device="cpu", progress=False), out_dir=tmp_path / "out",
                  isolate=False)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_prefetch_closes_its_threads_early() -> None:
    import threading

    ds = open_image_dataset("sample", scale=4)
    it = prefetch(ds, torch.device("cpu"), 1.0, workers=2, ahead=3)
    first = next(it)
    assert first.name == ds.names[0] and first.hr is not None and first.hr.shape[0] == 3
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ntirekit-read")]


def test_writer_reports_a_failed_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    writer = ImageWriter()
    writer.submit(tmp_path / "file" / "a.png", np.zeros((4, 4, 3), np.uint8))   # parent is a file
    with pytest.raises(Exception, match="a.png"):
        writer.close()


@pytest.mark.slow
def test_save_sr_then_pack_an_esr_results_zip(world: tuple[Path, Path], tmp_path: Path) -> None:
    entries, data = world
    sr_dir, out = tmp_path / "sr", tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(main, ["eval", "--track", "psnr", "--allow-random", "--entries", str(entries), "--entry", "tiny", "--data",
                               str(data), "--save-sr", str(sr_dir), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (sr_dir / "tiny").iterdir()) == [f"080{i}.png" for i in range(1, 6)]
    res = runner.invoke(main, ["eval", "--track", "runtime", "--entries", str(entries), "--entry", "tiny", "--data",
                               str(data), "--out", str(out), "--quiet", "--leaderboard", "none", "--full"])
    assert res.exit_code == 0, res.output
    (runtime_json,) = out.glob("tiny__runtime__*.json")
    outcome = pack(sr_dir / "tiny", fmt="esr-results", out=tmp_path / "tiny.zip", data=data, scale=2,
                   result=runtime_json, extra_data=0, description="tiny x2 test entry")
    assert outcome.zip_path is not None, outcome.report.render()
    assert check_zip(outcome.zip_path, data=data, scale=2).ok
    with zipfile.ZipFile(outcome.zip_path) as zf:
        assert {f"080{i}.png" for i in range(1, 6)} <= set(zf.namelist())


# ------------------------------------------------------------------------------------------------ eval defaults

@pytest.mark.slow
def test_cpu_runtime_default_is_a_quick_run_and_says_so(world: tuple[Path, Path], tmp_path: Path) -> None:
    entries, _ = world
    runner = CliRunner()
    common = ["eval", "--track", "runtime", "--entries", str(entries), "--entry", "tiny", "--device", "cpu",
              "--quiet", "--leaderboard", "none"]
    quick = runner.invoke(main, [*common, "--out", str(tmp_path / "q")])
    assert quick.exit_code == 0, quick.output
    assert "CPU quick run" in quick.output and "--full" in quick.output.split("tiny")[-1]   # note, then the hint
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "q").glob("*.json")]
    assert rec["runtime_images"] == 2 and "128x128" in rec["runtime_input"]
    assert rec["quick"] is True                         # the record says it (pack refuses its runtime by default)
    assert rec["options"]["warmup"] == 1 and rec["options"]["repeats"] == 3
    assert rec["flops_torch"] is None and rec["max_memory_mib"] > 0          # no cross-check; memory on the crops
    full = runner.invoke(main, [*common, "--full", "--warmup", "0", "--repeats", "1", "--cross-check",
                                "--out", str(tmp_path / "f")])
    assert full.exit_code == 0, full.output
    assert "CPU quick run" not in full.output
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "f").glob("*.json")]
    assert rec["runtime_images"] == 6 and rec["runtime_input"] == "div2k-like" and rec["flops_torch"] > 0
    assert "quick" not in rec


@pytest.mark.gpu
def test_cuda_integer_psnr_and_pipeline(world: tuple[Path, Path]) -> None:
    rng = np.random.default_rng(7)
    hr = rng.integers(0, 256, (339, 510, 3), dtype=np.uint8)
    sr = np.clip(hr + rng.normal(0, 6, hr.shape), 0, 255).astype(np.uint8)
    on_gpu = psnr_tensor(_chw(sr).cuda(), _chw(hr).cuda(), border=4)
    assert on_gpu == official_psnr(sr, hr, 4)
    y = torch.rand(1, 3, 33, 47, device="cuda") * 1.2 - 0.1
    assert np.array_equal(output_to_uint8(y, 1.0).permute(1, 2, 0).cpu().numpy(), to_uint8_output(y, 1.0))
    entries, data = world
    entry = discover([entries], include_defaults=False)["tiny"]
    records = []
    for workers in (0, 2):
        torch.manual_seed(0)
        options = EvalOptions(track="psnr", data=str(data), device="cuda", progress=False,
                              extra={"workers": workers, "ssim": True})
        records.append(run_track([entry], options, isolate=False)[0])
    assert records[0]["status"] == "ok" and records[0]["images"] == records[1]["images"]
