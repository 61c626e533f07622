"""``ntirekit check``: a corpus of malformed submission zips, generated here in temporary folders.

Every case must be REJECTED with its own clear problem code and message, never a traceback, and nothing may be
written outside the checker's temporary folder (canary paths and the parent folders are inspected).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ntirekit.cli.check_cmd import check as check_cli
from ntirekit.pack import ACCEPTED, REJECTED, Limits, check_zip, pack, parse_readme, render_readme, sr_name
from ntirekit.pack.formats import detect_format, png_info, team_name_problem
from tests.helpers.entries import write_entry

TEAM = "team99_tiny"


class MkdirOnLoad:
    """A pickle payload: unpickling it would create a marker folder (it must never be unpickled)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # noqa: D105
        return (os.mkdir, (self.marker,))


def tiny_state(scale: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"conv.weight": torch.randn(3 * scale * scale, 3, 3, 3) * 0.01,
            "conv.bias": torch.zeros(3 * scale * scale)}


def team_entry(root: Path, name: str = TEAM) -> Path:
    folder = write_entry(root, name, extra_toml='\n[weights]\nfile = "tiny.pth"\n')
    torch.save(tiny_state(), folder / "tiny.pth")
    return folder


def zip_of(path: Path, members: dict[str, bytes | str], *, attrs: dict[str, int] | None = None) -> Path:
    """A zip with exactly these members (names taken verbatim, so hostile names stay hostile)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if attrs and name in attrs:
                info.create_system = 3
                info.external_attr = attrs[name] << 16
            zf.writestr(info, data)
    return path


def folder_members(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def png_bytes(h: int = 8, w: int = 8) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


GOOD_README = render_readme({"runtime_s": 0.02, "cpu": 0, "extra_data": 0, "description": "tiny"}, "vqe-results")


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """The only folder the checker may write into (its temporary extraction folder lives below it)."""
    w = tmp_path / "work"
    w.mkdir()
    return w


def run_check(zip_path: Path, work: Path, **kwargs) -> "object":
    report = check_zip(zip_path, work_dir=work, **kwargs)
    assert list(work.iterdir()) == [], "the temporary extraction folder must be removed"
    return report


def assert_rejected(report, code: str, *, path_part: str = "") -> None:
    assert report.verdict == REJECTED, report.render()
    hits = [p for p in report.problems if p.code == code]
    assert hits, f"expected a {code!r} problem in:\n{report.render()}"
    assert all(p.message and "Traceback" not in p.message for p in report.problems)
    if path_part:
        assert any(path_part in p.path or path_part in p.message for p in hits), report.render()


# ---------------------------------------------------------------------------------------------------------- good

def test_packed_entry_is_accepted(tmp_path: Path, work: Path) -> None:
    outcome = pack(team_entry(tmp_path / "src"), out=tmp_path / "team.zip")
    assert outcome.zip_path is not None, outcome.report.render()
    report = run_check(outcome.zip_path, work)
    assert report.verdict == ACCEPTED, report.render()
    assert report.format == "esr-code" and report.problems == []


# ---------------------------------------------------------------------------------------------------------- paths

def test_path_traversal_absolute_path_and_symlink_never_escape(tmp_path: Path, work: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    canary_rel = tmp_path / "escaped.txt"
    canary_abs = outside / "absolute.txt"
    members = {**folder_members(team_entry(tmp_path / "src")),
               "../escaped.txt": "pwned",
               "../../escaped.txt": "pwned",
               "a/../../../escaped.txt": "pwned",
               "..\\escaped_win.txt": "pwned",
               str(canary_abs): "pwned",
               "C:/windows/evil.txt": "pwned",
               "link": str(outside)}
    zpath = zip_of(tmp_path / "hostile.zip", members, attrs={"link": 0o120777})
    before = sorted(p.name for p in tmp_path.iterdir())
    report = run_check(zpath, work)
    assert_rejected(report, "path-traversal", path_part="../escaped.txt")
    assert_rejected(report, "absolute-path", path_part=str(canary_abs))
    assert_rejected(report, "symlink", path_part="link")
    assert sum(p.code == "path-traversal" for p in report.problems) == 4     # every one, not only the first
    assert sum(p.code == "absolute-path" for p in report.problems) == 2
    assert not canary_rel.exists() and not canary_abs.exists()
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(outside.iterdir()) == []
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_duplicate_names_and_unexpected_file_types(tmp_path: Path, work: Path) -> None:
    members = folder_members(team_entry(tmp_path / "src"))
    zpath = tmp_path / "dup.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(zpath, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            zf.writestr("model.py", "print('second copy')")
            zf.writestr("Model.PY", "print('case twin')")
            zf.writestr("evil.so", b"\x7fELF")
            zf.writestr("__pycache__/model.cpython-311.pyc", b"\x00")
    report = run_check(zpath, work)
    assert_rejected(report, "duplicate-name", path_part="model.py")
    assert sum(p.code == "duplicate-name" for p in report.problems) == 2
    assert_rejected(report, "unexpected-file", path_part="evil.so")
    assert_rejected(report, "unexpected-file", path_part="__pycache__")


# ---------------------------------------------------------------------------------------------------------- bombs

def test_zip_bomb_by_declared_ratio(tmp_path: Path, work: Path) -> None:
    members = {**folder_members(team_entry(tmp_path / "src")), "notes.txt": b"\0" * (20 * 2**20)}
    report = run_check(zip_of(tmp_path / "bomb.zip", members), work)
    assert_rejected(report, "zip-bomb", path_part="notes.txt")


def test_zip_bomb_over_total_size_and_file_count(tmp_path: Path, work: Path) -> None:
    members = {f"{i:04d}.png": png_bytes() + b"\0" * 600 for i in range(12)}
    members["readme.txt"] = GOOD_README
    zpath = zip_of(tmp_path / "big.zip", members)
    report = run_check(zpath, work, limits=Limits(max_files=10, max_total_bytes=5000))
    assert_rejected(report, "too-many-files")
    assert_rejected(report, "too-large")
    assert any(w.code == "not-extracted" for w in report.warnings)


def _patch_sizes(path: Path, member: str, declared: int) -> None:
    """Make ``member`` declare ``declared`` uncompressed bytes in both its headers (a lying archive)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, declared)                 # local header
    name = member.encode()
    cd = data.find(b"PK\x01\x02")
    while cd != -1:
        n = struct.unpack_from("<H", data, cd + 28)[0]
        if bytes(data[cd + 46:cd + 46 + n]) == name:
            struct.pack_into("<I", data, cd + 24, declared)                          # central directory
        cd = data.find(b"PK\x01\x02", cd + 4)
    path.write_bytes(bytes(data))


def test_member_that_outgrows_its_declared_size_is_stopped(tmp_path: Path, work: Path) -> None:
    members = {"0001.png": png_bytes(), "blob.png": b"\0" * 200_000, "readme.txt": GOOD_README}
    zpath = zip_of(tmp_path / "lying.zip", members)
    _patch_sizes(zpath, "blob.png", 100)
    report = run_check(zpath, work, fmt="esr-results")
    assert report.verdict == REJECTED
    assert {"crc-error", "zip-bomb", "corrupt"} & set(report.codes()), report.render()
    assert any("blob.png" in p.path for p in report.problems)


# ---------------------------------------------------------------------------------------------------------- corrupt

def test_truncated_zip(tmp_path: Path, work: Path) -> None:
    good = pack(team_entry(tmp_path / "src"), out=tmp_path / "team.zip").zip_path
    assert good is not None
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    report = run_check(cut, work)
    assert_rejected(report, "not-a-zip")
    assert "truncated" in report.problems[0].message


def test_crc_error_in_a_member(tmp_path: Path, work: Path) -> None:
    zpath = tmp_path / "crc.zip"
    payload = b"print('hello')\n" * 50
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("notes.txt", payload)
    data = bytearray(zpath.read_bytes())
    at = data.find(payload)
    data[at + 10] ^= 0xFF
    zpath.write_bytes(bytes(data))
    report = run_check(zpath, work, fmt="esr-code")
    assert_rejected(report, "crc-error", path_part="notes.txt")


def test_not_a_zip_and_missing_file(tmp_path: Path, work: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip at all")
    assert_rejected(run_check(junk, work), "not-a-zip")
    assert_rejected(run_check(tmp_path / "absent.zip", work), "not-found")


# ---------------------------------------------------------------------------------------------------------- content

def test_missing_weights(tmp_path: Path, work: Path) -> None:
    members = folder_members(team_entry(tmp_path / "src"))
    del members["tiny.pth"]
    report = run_check(zip_of(tmp_path / "noweights.zip", members), work)
    assert_rejected(report, "missing-weights")
    assert "tiny.pth" in report.problems[0].message


def test_wrong_names(tmp_path: Path, work: Path) -> None:
    members = folder_members(team_entry(tmp_path / "src", name="team9_tiny"))
    report = run_check(zip_of(tmp_path / "name.zip", members), work)
    assert_rejected(report, "wrong-name")
    assert "team09_tiny" in report.problems[0].message          # says what the name should be

    legacy = {"models/team04_tiny.py": "x = 1\n", "model_zoo/team05_other.pth": b"",
              "factsheet/team04.pdf": b"%PDF-1.4\n", "factsheet/team04_src.zip": b""}
    report = run_check(zip_of(tmp_path / "legacy.zip", legacy), work)
    assert_rejected(report, "wrong-name", path_part="models/team04_tiny.py")
    assert_rejected(report, "mixed-teams")

    results = {"0801x4.png": png_bytes(), "0802.png": png_bytes(), "readme.txt": GOOD_README}
    report = run_check(zip_of(tmp_path / "results.zip", results), work)
    assert report.format == "esr-results"
    assert_rejected(report, "wrong-name")
    assert "0801x4.png" in report.problems[0].message and "0801.png" in report.problems[0].message


@pytest.mark.parametrize("layout", ["plain-pickle", "torch-save"])
def test_pickle_with_code_is_refused_and_never_run(tmp_path: Path, work: Path, layout: str) -> None:
    marker = tmp_path / "PWNED"
    folder = team_entry(tmp_path / "src")
    if layout == "plain-pickle":
        (folder / "tiny.pth").write_bytes(pickle.dumps({"conv.weight": MkdirOnLoad(marker)}))
    else:
        torch.save({"conv.weight": torch.ones(1), "x": MkdirOnLoad(marker)}, folder / "tiny.pth")
    report = run_check(zip_of(tmp_path / "evil.zip", folder_members(folder)), work)
    assert_rejected(report, "unsafe-checkpoint", path_part="tiny.pth")
    assert "weights_only" in report.problems[0].message and "mkdir" in report.problems[0].message
    assert not marker.exists()


def test_checkpoint_that_is_not_a_state_dict(tmp_path: Path, work: Path) -> None:
    folder = team_entry(tmp_path / "src")
    torch.save([1, 2, 3], folder / "tiny.pth")
    assert_rejected(run_check(zip_of(tmp_path / "list.zip", folder_members(folder)), work), "bad-checkpoint")
    (folder / "tiny.pth").write_bytes(b"garbage")
    assert_rejected(run_check(zip_of(tmp_path / "garbage.zip", folder_members(folder)), work), "bad-checkpoint")


def test_readme_missing_fields(tmp_path: Path, work: Path) -> None:
    readme = "runtime per frame [s] : 0.5\nExtra Data [1] / No Extra Data [0] : 2\n"
    members = {"001/001.png": png_bytes(), "001/002.png": png_bytes(), "readme.txt": readme}
    report = run_check(zip_of(tmp_path / "vqe.zip", members), work)
    assert report.format == "vqe-results"
    assert_rejected(report, "readme-field")
    messages = " | ".join(p.message for p in report.problems)
    assert "CPU[1] / GPU[0]" in messages and "Other description" in messages
    assert_rejected(report, "readme-value")                # Extra Data must be 0 or 1
    members.pop("readme.txt")
    assert_rejected(run_check(zip_of(tmp_path / "vqe2.zip", members), work), "missing-readme")


def test_manifest_hash_mismatch(tmp_path: Path, work: Path) -> None:
    good = pack(team_entry(tmp_path / "src"), out=tmp_path / "team.zip").zip_path
    assert good is not None
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["model.py"] = members["model.py"] + b"\n# changed after packing\n"
    members["extra.txt"] = b"added after packing"
    del members["entry.toml"]
    report = run_check(zip_of(tmp_path / "tampered.zip", members), work)
    assert_rejected(report, "manifest-mismatch", path_part="model.py")
    assert_rejected(report, "manifest-mismatch", path_part="extra.txt")
    assert_rejected(report, "manifest-mismatch", path_part="entry.toml")


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path, work: Path) -> None:
    marker = tmp_path / "PWNED"
    folder = team_entry(tmp_path / "src", name="tiny")
    (folder / "tiny.pth").write_bytes(pickle.dumps(MkdirOnLoad(marker)))
    members = {**folder_members(folder), "../up.txt": "x", "run.sh": "rm -rf /"}
    report = run_check(zip_of(tmp_path / "many.zip", members), work)
    assert {"path-traversal", "wrong-name", "unsafe-checkpoint", "unexpected-file"} <= set(report.codes())
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------- cli

def test_cli_verdicts_without_traceback(tmp_path: Path) -> None:
    good = pack(team_entry(tmp_path / "src"), out=tmp_path / "team.zip").zip_path
    runner = CliRunner()
    ok = runner.invoke(check_cli, [str(good)])
    assert ok.exit_code == 0 and ok.output.startswith("ACCEPTED"), ok.output
    bad = zip_of(tmp_path / "bad.zip", {"../x.txt": "x", "/abs.txt": "y"})
    res = runner.invoke(check_cli, [str(bad)])
    assert res.exit_code == 1 and res.output.startswith("REJECTED")
    assert "Traceback" not in res.output and "path-traversal" in res.output and "absolute-path" in res.output
    res = runner.invoke(check_cli, [str(bad), "--json"])
    data = json.loads(res.output)
    assert data["verdict"] == "REJECTED" and {p["code"] for p in data["problems"]} >= {"path-traversal",
                                                                                         "absolute-path"}


# ---------------------------------------------------------------------------------------------------------- units

def test_names_and_readme_units() -> None:
    assert team_name_problem("team04_rlfn") is None
    assert "team04_rlfn" in team_name_problem("team4_rlfn")
    assert team_name_problem("rlfn") is not None
    assert sr_name("0801x4.png") == "0801.png" and sr_name("0000001x4") == "0000001.png"
    assert detect_format(["entry.toml", "model.py"]) == "esr-code"
    assert detect_format(["001/001.png", "readme.txt"]) == "vqe-results"
    assert detect_format(["0801.png", "readme.txt"]) == "esr-results"
    assert detect_format(["notes.txt"]) is None
    values, problems = parse_readme(GOOD_README, "vqe-results")
    assert problems == [] and values == {"runtime_s": 0.02, "cpu": 0, "extra_data": 0, "description": "tiny"}
    assert "runtime per frame [s] : 0.02" in GOOD_README


def test_png_header_reader(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(6, 10))
    assert png_info(path)[:2] == (10, 6)
    path.write_bytes(png_bytes(6, 10)[:-20])
    with pytest.raises(ValueError, match="truncated"):
        png_info(path)
    path.write_bytes(b"GIF89a" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a PNG"):
        png_info(path)
