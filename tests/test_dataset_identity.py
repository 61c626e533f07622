"""Datasets known by what they are (name + digest of the file list and sizes), and data faults that are the
dataset's, found before any entry runs and never written into an entry's record."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.records import human_name, split_of
from ntirekit.core.registry import discover
from ntirekit.data import DataError
from ntirekit.data.identity import describe_data, image_size
from ntirekit.data.images import write_image
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from tests.helpers.entries import write_entry

#: a model that raises the kit's DataError itself: an entry must not pass its own failure off as the dataset's
FAKE_DATA_ERROR = ("import torch\nfrom ntirekit.data import DataError\nclass TinySR(torch.nn.Module):\n"
                   "    def __init__(self, scale=4):\n        super().__init__()\n"
                   "        self.w = torch.nn.Parameter(torch.zeros(1))\n"
                   "    def forward(self, x):\n        raise DataError('not my fault, says the entry')\n")


def _image_set(folder: Path, seed: int, hr_shape: tuple[int, int] = (32, 36)) -> Path:
    """HR/ + LR_bicubic/X4/ PNG pairs, named like Set5's layout."""
    rng = np.random.default_rng(seed)
    h, w = hr_shape
    for name in ("baby", "bird"):
        write_image(folder / "HR" / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        write_image(folder / "LR_bicubic" / "X4" / f"{name}x4.png",
                    rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8))
    return folder


def _expected_identity(folder: Path) -> str:
    """The identity computed here, independently: the sorted 'relative path<TAB>size' lines of every file."""
    lines = sorted(f"{p.relative_to(folder).as_posix()}\t{p.stat().st_size}\n" for p in folder.rglob("*")
                   if p.is_file())
    return f"{folder.name}-{hashlib.sha256(''.join(lines).encode()).hexdigest()[:8]}"


def _eval(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--quiet", *args])
    return result.exit_code, result.output


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.json"))}


def test_identity_is_the_file_list_and_sizes_not_the_name_or_place(tmp_path: Path) -> None:
    real = _image_set(tmp_path / "a" / "Set5", 0)
    copy = Path(shutil.copytree(real, tmp_path / "b" / "Set5"))
    other = _image_set(tmp_path / "c" / "Set5", 1, hr_shape=(40, 36))
    identity = describe_data(str(real), 4, None, images=True)
    assert identity == _expected_identity(real)                     # name + digest of the list and sizes
    assert describe_data(str(copy), 4, None, images=True) == identity   # the same files elsewhere: the same dataset
    assert describe_data(str(other), 4, None, images=True) != identity  # named alike, other files: another one
    assert human_name(identity) == "Set5" and re.fullmatch(r"Set5-[0-9a-f]{8}", identity)
    assert describe_data("sample", 4, None, images=True) == "sample"        # the built-ins keep their names
    assert describe_data("div2k-like", 4, None, images=True) == "div2k-like"
    # the split is read from the human part only
    assert split_of("DIV2K_valid-0b1c2d3e") == "valid" and split_of("Set5-3f9a2c1d") is None


def test_a_corrupt_copy_named_set5_never_mixes_into_the_real_set5(tmp_path: Path) -> None:
    real = _image_set(tmp_path / "data" / "Set5", 0)
    out = tmp_path / "results"
    code, output = _eval("--data", str(real), "--split", "valid", "--entry", "bicubic", "--out", str(out))
    assert code == 0, output
    good = _files(out)
    (good_name,) = good
    assert f"__{_expected_identity(real)}.valid.challenge__" in good_name
    good_record = json.loads(good[good_name])
    assert good_record["dataset"] == _expected_identity(real)

    # a corrupt copy at another path, also named Set5: one line, before any entry runs, nothing written
    corrupt = Path(shutil.copytree(real, tmp_path / "elsewhere" / "Set5"))
    data = (corrupt / "HR" / "bird.png").read_bytes()
    (corrupt / "HR" / "bird.png").write_bytes(data[: len(data) // 2])
    code, output = _eval("--data", str(corrupt), "--split", "valid", "--entry", "bicubic", "--entry", "rlfn",
                         "--out", str(out))
    lines = [line for line in output.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "HR/bird.png" in lines[0] and "cut short" in lines[0], output
    assert _files(out) == good

    # a valid copy named Set5 with other images is another dataset: its own file, the real record untouched
    edited = _image_set(tmp_path / "edited" / "Set5", 7, hr_shape=(40, 44))
    code, output = _eval("--data", str(edited), "--split", "valid", "--entry", "bicubic", "--out", str(out))
    assert code == 0, output
    now = _files(out)
    assert len(now) == 2 and now[good_name] == good[good_name]
    datasets = {json.loads(v)["dataset"] for v in now.values()}
    assert datasets == {_expected_identity(real), _expected_identity(edited)}

    # the leaderboard never ranks PSNR of the two together; the real Set5's files alone rank as before
    board = CliRunner().invoke(main, ["leaderboard", str(out), "--protocol", "ntire2022", "--track", "overall",
                                      "--format", "json"])
    assert board.exit_code != 0 and "2 different datasets" in board.output, board.output
    board = CliRunner().invoke(main, ["leaderboard", str(out / good_name), "--protocol", "ntire2022", "--track",
                                      "overall", "--format", "json", "--gate", "none"])
    assert board.exit_code == 0, board.output
    (row,) = json.loads(board.output[board.output.index("{"):])["rows"]
    assert row["entry"] == "bicubic" and row["status"] == "reference" and not row["reason"]
    assert row["metrics"]["psnr_val"]["value"] == pytest.approx(good_record["psnr_db"])


def test_lr_hr_sizes_that_do_not_pair_are_found_before_any_entry_runs(tmp_path: Path) -> None:
    data = _image_set(tmp_path / "Set5", 0)
    write_image(data / "LR_bicubic" / "X4" / "birdx4.png", np.zeros((7, 9, 3), np.uint8))   # HR 32x36 -> LR 8x9
    entries = tmp_path / "entries"
    write_entry(entries, "tiny")
    out = tmp_path / "out"
    code, output = _eval("--allow-random", "--entries", str(entries), "--entry", "tiny", "--data", str(data),
                         "--out", str(out))
    lines = [line for line in output.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "LR 7x9 does not match HR" in lines[0], output
    assert not out.exists() or not list(out.glob("*.json"))


def test_header_check_reads_sizes_as_the_decoder_does(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", np.zeros((20, 30, 3), np.uint8))
    write_image(tmp_path / "x.bmp", np.zeros((21, 31, 3), np.uint8))
    assert image_size(tmp_path / "x.png") == (20, 30) and image_size(tmp_path / "x.bmp") == (21, 31)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(os.urandom(200))
    for name in ("empty.png", "junk.png"):
        with pytest.raises(DataError, match=name):
            image_size(tmp_path / name)
    data = (tmp_path / "x.bmp").read_bytes()
    (tmp_path / "cut.bmp").write_bytes(data[:-40])
    with pytest.raises(DataError, match="cut short"):
        image_size(tmp_path / "cut.bmp")


def test_a_fault_only_a_full_decode_finds_is_the_datasets_not_an_entrys(tmp_path: Path) -> None:
    data = _image_set(tmp_path / "Set5", 0)
    png = bytearray((data / "HR" / "baby.png").read_bytes())
    png[60] ^= 0xFF                                       # inside the compressed stream: the header still reads
    (data / "HR" / "baby.png").write_bytes(bytes(png))
    assert image_size(data / "HR" / "baby.png") == (32, 36)
    registry = discover([], include_defaults=True)
    out = tmp_path / "out"
    options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False)
    with pytest.raises(DataError, match="baby.png"):
        run_track([registry["bicubic"]], options, out_dir=out, isolate=False)
    assert not list(out.glob("*.json"))                  # the entry's record never carries the dataset's fault


def test_an_entry_raising_a_data_error_itself_is_recorded_as_its_own_failure(tmp_path: Path) -> None:
    data = _image_set(tmp_path / "Set5", 0)
    entries = tmp_path / "entries"
    write_entry(entries, "liar", model_code=FAKE_DATA_ERROR)
    registry = discover([entries])
    options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False)
    records = run_track([registry["liar"], registry["bicubic"]], options, out_dir=tmp_path / "out", isolate=False)
    status = {r["entry"]: r["status"] for r in records}
    assert status == {"liar": "failed", "bicubic": "ok"}        # the others ran; the dataset is fine
    assert "not my fault" in next(r["error"] for r in records if r["entry"] == "liar")
