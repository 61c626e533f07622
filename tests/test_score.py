"""``ntirekit score``: an upload scored against ground truth. PSNR against hand-computed values (border, both
protocols), readme fields as the packer writes them, every kind of bad upload as one line without a traceback, and
bounded memory for a 20000x20000 PNG of 1.2 MB and a PNG whose data inflate to a gigabyte."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.hostile_pngs import black_png

from ntirekit.cli import main
from ntirekit.data.images import write_image
from ntirekit.pack.formats import render_readme
from ntirekit.score import score_results
from ntirekit.score.png import PngError, read_png

REPO = Path(__file__).resolve().parents[1]
NAMES = ("a", "b", "c")
HW = (48, 40)
README = {"runtime_s": 0.031, "cpu": 0, "extra_data": 1, "description": "tiny test: SR = HR + 2"}


def _hr(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(10, 240, (*HW, 3), dtype=np.uint8)


def _reference(root: Path) -> Path:
    for i, name in enumerate(NAMES):
        write_image(root / f"{name}.png", _hr(i))
    return root


def _upload(root: Path, shift: int = 2) -> Path:
    """SR = HR + ``shift`` inside the 4-pixel border, HR - 90 on it (which the PSNR must not see)."""
    root.mkdir(parents=True)
    for i, name in enumerate(NAMES):
        sr = _hr(i).astype(np.int16) - 90
        sr[4:-4, 4:-4] += 90 + shift
        write_image(root / f"{name}.png", np.clip(sr, 0, 255).astype(np.uint8))
    (root / "readme.txt").write_text(render_readme(README, "esr-results"), encoding="utf-8")
    return root


def _zip(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return out


@pytest.fixture()
def ref(tmp_path: Path) -> Path:
    return _reference(tmp_path / "HR")


def test_challenge_psnr_shaves_the_border_and_matches_the_formula(tmp_path, ref):
    outcome = score_results(_upload(tmp_path / "up"), ref)
    assert outcome.report.ok, outcome.report.render()
    expected = 20 * math.log10(255 / 2)                  # MSE = 2^2 inside the border; the border is not seen
    assert [r["name"] for r in outcome.scores.rows] == list(NAMES)
    assert all(r["psnr_db"] == pytest.approx(expected, abs=1e-12) for r in outcome.scores.rows)
    assert outcome.scores.psnr_db == pytest.approx(expected, abs=1e-12)
    # a smaller border sees the -90 frame: the PSNR drops
    wide = score_results(tmp_path / "up", ref, scale=2)
    assert wide.scores.psnr_db < expected - 10


def test_paper_protocol_is_the_bt601_luma(tmp_path, ref):
    outcome = score_results(_upload(tmp_path / "up", shift=3), ref, protocol="paper")
    dy = 3 * (65.481 + 128.553 + 24.966) / 255           # a grey shift of 3 moves Y by 3 * 219 / 255
    assert outcome.scores.psnr_db == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)


def test_readme_fields_come_out_as_the_packer_wrote_them(tmp_path, ref):
    outcome = score_results(_zip(_upload(tmp_path / "up"), tmp_path / "up.zip"), ref)
    assert outcome.report.ok and outcome.scores.readme == README
    board = outcome.to_dict()["leaderboard"]
    assert board == {"psnr": outcome.scores.psnr_db, "runtime": 0.031, "cpu": 0, "extra_data": 1}


def test_ssim_is_opt_in_and_equals_the_kits(tmp_path, ref):
    from ntirekit.data.images import read_image
    from ntirekit.quality import ssim

    up = _upload(tmp_path / "up")
    assert "ssim" not in score_results(up, ref).scores.rows[0]
    rows = score_results(up, ref, ssim_too=True).scores.rows
    assert rows[0]["ssim"] == ssim(read_image(up / "a.png"), _hr(0), border=4)


# ------------------------------------------------------------------------------------------------ bad uploads

def _replace(up: Path, name: str, writer) -> None:  # noqa: ANN001
    (up / name).unlink()
    writer(up)


def _bad(case: str, tmp: Path) -> Path:
    """The upload of one bad case (a folder or a zip)."""
    up = _upload(tmp / "up")
    if case == "missing image":
        (up / "b.png").unlink()
    elif case == "extra file":
        write_image(up / "d.png", _hr(9))
    elif case == "wrong size":
        write_image(up / "a.png", _hr(0)[:-1])
    elif case == "not a PNG":
        (up / "a.png").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(600))
    elif case == "jpg name":
        (up / "a.png").rename(up / "a.jpg")
    elif case == "LR name":
        (up / "a.png").rename(up / "ax4.png")
    elif case == "20000x20000 PNG":
        black_png(up / "a.png", 20000, 20000)
    elif case == "PNG bomb":
        black_png(up / "a.png", 20000, 20000, declared=(40, 48))
    elif case == "16-bit PNG":
        write_image(up / "a.png", _hr(0).astype(np.uint16) * 257)
    elif case == "exact copy":
        write_image(up / "a.png", _hr(0))
    elif case == "readme case":
        (up / "readme.txt").rename(up / "README.TXT")
    elif case == "no readme":
        (up / "readme.txt").unlink()
    elif case == "nested folder":
        return _zip(up, tmp / "up.zip", prefix="results/")
    elif case == "dotdot names":
        out = _zip(up, tmp / "up.zip")
        with zipfile.ZipFile(out, "a") as zf:
            zf.writestr("../a.png", b"x")
            zf.writestr("x/../../b.png", b"x")
        return out
    elif case == "zip bomb":
        out = _zip(up, tmp / "up.zip")
        with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("d.png", bytes(40 * 2**20))
        return out
    else:
        raise AssertionError(case)
    return up


BAD = {  # case -> (problem code, words of its one line, how many images are still scored: None, nothing read)
    "missing image": ("missing-image", "b.png: no SR image for it", 2),
    "extra file": ("extra-file", "d.png: not an image of the reference set", 3),
    "wrong size": ("wrong-size", "a.png: is 40x47, expected 40x48", 2),
    "not a PNG": ("not-png", "a.png: not a PNG file", 2),
    "jpg name": ("misnamed", "a.jpg: is not a .png file name: expected a.png", 2),
    "LR name": ("misnamed", "ax4.png: carries the LR suffix", 2),
    "20000x20000 PNG": ("wrong-size", "a.png: is 20000x20000, expected 40x48", 2),
    "PNG bomb": ("png-bomb", "a.png: image data inflate to more than the 5,808 bytes a 40x48 image holds", 2),
    "16-bit PNG": ("png-format", "a.png: 16-bit RGB PNG; 8 bits per sample only", 2),
    "no readme": ("missing-readme", "no readme.txt", 3),
    "nested folder": ("nested-folder", "results/: everything lies in this folder", 0),
    "dotdot names": ("path-traversal", "../a.png: '..' in the member path", 3),
    "zip bomb": ("zip-bomb", "beyond 200:1", None),
    "exact copy": ("exact-copy", "a.png: identical to the reference", 3),
    "readme case": ("missing-readme", "no readme.txt with the four NTIRE fields (found README.TXT: it must be named", 3),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_upload_is_one_line_per_problem_and_no_traceback(tmp_path, ref, case):
    upload = _bad(case, tmp_path)
    result = CliRunner().invoke(main, ["score", str(upload), "--ref", str(ref)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit)), \
        result.output
    assert "Traceback" not in result.output
    code, words, scored = BAD[case]
    lines = [line for line in result.output.splitlines() if line.startswith("  - [")]
    assert any(f"[{code}]" in line and words in line for line in lines), result.output
    outcome = score_results(upload, ref)
    assert not outcome.report.ok and code in outcome.report.codes()
    assert all("\n" not in str(p) for p in outcome.report.problems)
    expected_problems = {"dotdot names": 2, "zip bomb": 2}.get(case, 1)   # the bomb: the member and the archive
    assert len(outcome.report.problems) == expected_problems, outcome.report.render()
    if scored is None:                                   # the archive is refused as a whole: nothing is read
        assert outcome.scores is None
    else:                                                # the other images are still scored, but no mean is given
        assert outcome.scores.psnr_db is None and len(outcome.scores.rows) == scored


def test_the_png_header_is_checked_before_any_pixel(tmp_path):
    big = black_png(tmp_path / "big.png", 20000, 20000)
    assert big.stat().st_size < 1_300_000
    with pytest.raises(PngError, match="is 20000x20000, expected 40x48"):
        read_png(big, (48, 40))
    small = black_png(tmp_path / "small.png", 40, 48, rows_per_segment=8)
    assert read_png(small, (48, 40)).shape == (48, 40, 3) and not read_png(small).any()
    cut = tmp_path / "cut.png"
    cut.write_bytes(small.read_bytes()[:-40])
    with pytest.raises(PngError, match="truncated"):
        read_png(cut)


MEMORY_PROBE = """
import json, resource, sys
from ntirekit.score import score_results
ref, good, bad = sys.argv[1:4]
score_results(good, ref)                                  # every lazy import and first allocation done
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = score_results(bad, ref)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "codes": outcome.report.codes(), "rss_kib": after}))
"""


def test_hostile_pngs_are_refused_in_bounded_memory(tmp_path, ref):
    """A 20000x20000 PNG of 1.2 MB (1.2 GB of pixels) and a 40x48 PNG whose data inflate to 1.2 GB: the peak
    resident memory of a fresh process does not grow by more than a few MiB while they are refused."""
    good = _upload(tmp_path / "good")
    bad = _upload(tmp_path / "bad")
    black_png(bad / "a.png", 20000, 20000)
    black_png(bad / "b.png", 20000, 20000, declared=(40, 48))
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(ref), str(good), str(bad)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert sorted(found["codes"]) == ["png-bomb", "wrong-size"]
    assert found["grew_kib"] < 32 * 1024, found            # decoding either would take 1.2 GB
    print(f"peak RSS grew by {found['grew_kib']} KiB (peak {found['rss_kib'] / 1024:.0f} MiB) refusing them")


def test_a_reference_problem_is_the_organizers_one_line(tmp_path):
    result = CliRunner().invoke(main, ["score", str(_upload(tmp_path / "up")), "--ref", str(tmp_path / "up"),
                                       "--track", "vqe"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and "Error:" in result.output


def test_a_folder_upload_never_follows_links(tmp_path, ref):
    up = _upload(tmp_path / "up")
    (up / "a.png").unlink()
    (up / "a.png").symlink_to(tmp_path / "HR" / "a.png")      # would score perfectly if followed
    outcome = score_results(up, ref)
    assert outcome.report.codes() == ["symlink", "missing-image"]
    shutil.rmtree(up)


def _vqe(root: Path) -> tuple[Path, Path]:
    """Clean clips 001 (21 frames) and 002 (12 frames), and an upload of every frame (clean + 2)."""
    from ntirekit.data.video import write_png_folder

    rng = np.random.default_rng(3)
    for name, n in (("001", 21), ("002", 12)):
        frames = [rng.integers(20, 230, (20, 24, 3), dtype=np.uint8) for _ in range(n)]
        write_png_folder(frames, root / "clean" / name)
        for k, frame in enumerate(frames, 1):
            write_image(root / "up" / name / f"{k:03d}.png", frame + np.uint8(2))
    (root / "up" / "readme.txt").write_text(render_readme({**README, "runtime_s": 0.5}, "vqe-results"))
    return root / "clean", root / "up"


def test_vqe_uploads_every_misfit_one_line(tmp_path):
    clean, up = _vqe(tmp_path)
    every = score_results(up, clean)
    assert every.report.ok and every.scores.settings.frame_step == 1
    assert every.scores.psnr_db == pytest.approx(20 * math.log10(255 / 2), abs=1e-12)
    # every frame uploaded, every 10th scored: one line per video for the frames that are not scored
    tenth = score_results(up, clean, frame_step=10)
    assert tenth.report.codes() == ["extra-frames", "extra-frames"]
    assert str(tenth.report.problems[0]) == ("[extra-frames] 001/: 19 frame(s) that are not scored (001.png, 002.png, "
                                             "003.png, ...): the video has 21 frames and the scoring takes every 10th "
                                             "frame (010.png, 020.png, ...)")
    (up / "001" / "005.png").unlink()
    (up / "002" / "007.png").rename(up / "002" / "frame7.png")
    shutil.copytree(up / "002", up / "003")
    (up / "stray.png").write_bytes(b"x")
    report = score_results(up, clean).report
    assert sorted(str(p) for p in report.problems) == sorted([
        "[extra-file] stray.png: the upload's root holds readme.txt and one folder of PNG frames per video",
        "[misnamed] 002/frame7.png: not a frame name (001.png, 002.png, ... as ffmpeg's %3d.png numbers them)",
        "[extra-video] 003/: not a video of the reference set (12 files)",
        "[missing-frames] 001/: 1 of its 21 scored frames are missing (005.png)",
        "[missing-frames] 002/: 1 of its 12 scored frames are missing (007.png)"])
