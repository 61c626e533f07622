"""Hostile archives and checkpoints: the overlapping zip bomb, a checkpoint whose pickle inflates to 1 GiB, names with
control and text-direction characters. Every hostile file is built byte by byte (tests/helpers/hostile_zips.py) and is
valid, so that a naive reader would extract or load it."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch

from ntirekit.core.checkpoint import CheckpointLimits, CheckpointRefused, vet_checkpoint
from ntirekit.pack import REJECTED, Limits, Report, safe_extract
from ntirekit.pack.safezip import open_zip, vet_members
from ntirekit.core.weights import WeightsError, read_checkpoint
from ntirekit.core.zipvet import layout_problems, member_spans, name_character_problem
from tests.helpers.hostile_zips import write_archive, local_header, overlap_bomb, pickle_bomb_checkpoint
from tests.test_check import assert_rejected, folder_members, run_check, team_entry, zip_of

#: one of each class refused in names: C0, DEL, C1 (NEL, CSI), bidi embedding/override/isolates, zero width, BOM,
#: line separator
BAD_CHARACTERS = ["\x01", "\x1b", "\x7f", "\x85", "\x9b", "\u202a", "\u202e", "\u2066", "\u2069", "\u200b", "\ufeff",
                  "\u2028"]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return overlap_bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip")


@pytest.fixture(scope="module")
def pth_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pickle_bomb_checkpoint(tmp_path_factory.mktemp("pth") / "tiny.pth")


class OpenCounter:
    """Counts ``zipfile.ZipFile.open`` calls: decompression never starts without one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = zipfile.ZipFile.open

        def counting(zf, *args, **kwargs):
            self.calls += 1
            return real(zf, *args, **kwargs)

        monkeypatch.setattr(zipfile.ZipFile, "open", counting)


# ---------------------------------------------------------------------------------------------------------- overlap

def test_the_overlap_bomb_is_real(bomb: Path) -> None:
    with zipfile.ZipFile(bomb) as zf:
        infos = zf.infolist()
        declared = sum(i.file_size for i in infos)
        assert bomb.stat().st_size < 200_000 and declared > 10**9 and len(infos) == 1100
        assert max(i.file_size for i in infos) < 2**20           # no member reaches the per-member ratio check
        first, last = zf.read(infos[0]), zf.read(infos[-1])     # zipfile verifies each CRC on reading
    assert len(first) == infos[0].file_size and first.endswith(bytes(2**20 - 64 * 1024))
    assert first.startswith(b"PK\x03\x04")                       # it inflates to the next member's local header
    assert last == bytes(2**20 - 64 * 1024)


def test_overlap_bomb_is_refused_from_metadata_alone(bomb: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    counter = OpenCounter(monkeypatch)
    report = Report(source=str(bomb))
    dest = tmp_path / "out"
    # even with the ratio checks out of the way, the layout alone refuses it
    written = safe_extract(bomb, dest, report, Limits(max_ratio=1e12))
    assert written == {} and counter.calls == 0
    assert [p for p in dest.rglob("*")] == []
    overlap = [p for p in report.problems if p.code == "overlapping-members"]
    assert len(overlap) == 1 and "1099 members" in overlap[0].message and "\n" not in overlap[0].message
    assert report.verdict == REJECTED


def test_overlap_bomb_is_rejected_by_check(bomb: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    report = run_check(bomb, work)
    assert_rejected(report, "overlapping-members")
    assert_rejected(report, "zip-bomb")                         # and the whole-archive ratio: 1.1 GB from 112 kB


def test_members_sharing_one_local_header_and_data_past_the_archive(tmp_path: Path) -> None:
    data = b"hello"
    header = local_header(b"a.txt", 0, zipfile.crc32(data), len(data), len(data))
    same = write_archive(tmp_path / "same.zip", header + data,
                          [(b"a.txt", 0, zipfile.crc32(data), 5, 5, 0), (b"a.txt", 0, zipfile.crc32(data), 5, 5, 0)])
    past = write_archive(tmp_path / "past.zip", header + data, [(b"a.txt", 0, zipfile.crc32(data), 500, 500, 0)])
    missing = write_archive(tmp_path / "missing.zip", header + data, [(b"a.txt", 0, zipfile.crc32(data), 5, 5, 7)])
    with zipfile.ZipFile(same) as zf:
        assert [c for c, _m, _n in layout_problems(zf)] == ["overlapping-members"]
    with zipfile.ZipFile(past) as zf:
        assert [c for c, _m, _n in layout_problems(zf)] == ["outside-archive"]
    with zipfile.ZipFile(missing) as zf:
        assert [c for c, _m, _n in layout_problems(zf)] == ["bad-header"]


def test_honest_spans_tile_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "honest.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("dir/", b"")
        zf.writestr(zipfile.ZipInfo("dir/a.txt"), b"a" * 1000, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("b.bin", bytes(range(256)) * 40)
        zf.writestr("é/ü.txt", "non-ASCII names are fine")
    with zipfile.ZipFile(path) as zf:
        spans, problems = member_spans(zf)
        assert problems == [] and layout_problems(zf) == []
        ordered = sorted(spans, key=lambda s: s.start)
        # back to back from byte 0 to the central directory: an independent account of every byte
        assert ordered[0].start == 0 and ordered[-1].end == zf.start_dir
        assert all(a.end == b.start for a, b in zip(ordered, ordered[1:]))


# ---------------------------------------------------------------------------------------------------------- names

@pytest.mark.parametrize("char", BAD_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARACTERS])
def test_names_with_control_or_direction_characters_are_refused(char: str, tmp_path: Path) -> None:
    path = zip_of(tmp_path / "names.zip", {f"model{char}txt.py": "x = 1\n", "ok.txt": "fine"})
    report = Report(source=str(path))
    zf = open_zip(path, report)
    assert zf is not None
    with zf:
        safe = vet_members(zf, report)
    assert [i.filename for i in safe] == ["ok.txt"]
    bad = [p for p in report.problems if p.code == "bad-name"]
    assert len(bad) == 1 and f"U+{ord(char):04X}" in bad[0].message


def test_ordinary_unicode_names_pass() -> None:
    for name in ("résumé.txt", "数据/图像.png", "a b-c_d.e"):
        assert name_character_problem(name) is None


# ---------------------------------------------------------------------------------------------------------- checkpoints

def test_the_pickle_bomb_checkpoint_is_real(pth_bomb: Path) -> None:
    with zipfile.ZipFile(pth_bomb) as zf:
        pkl = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
        assert pkl.file_size > 2**30 and pth_bomb.stat().st_size < 8 * 2**20
        with zf.open(pkl) as src:                               # the start of it is the real pickle
            assert src.read(2) == b"\x80\x02"


def test_pickle_bomb_checkpoint_is_refused_before_any_allocation(pth_bomb: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    counter = OpenCounter(monkeypatch)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointRefused, match="data.pkl") as caught:
            vet_checkpoint(pth_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 and counter.calls == 0
    assert "\n" not in str(caught.value)
    with pytest.raises(WeightsError, match="CheckpointRefused: member 'archive/data.pkl' declares a 1,073,"):
        read_checkpoint(pth_bomb, "tiny.pth")


def test_pickle_bomb_checkpoint_is_rejected_by_check(pth_bomb: Path, tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    (folder / "tiny.pth").write_bytes(pth_bomb.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    outer = tmp_path / "bomb.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_STORED) as zf:        # stored: the outer zip's ratio is 1
        for name, data in folder_members(folder).items():
            zf.writestr(name, data)
    report = run_check(outer, work)
    assert_rejected(report, "bad-checkpoint", path_part="tiny.pth")
    assert any("refused before loading" in p.message for p in report.problems)


def test_member_that_inflates_beyond_its_declared_size_is_refused(tmp_path: Path) -> None:
    liar = pickle_bomb_checkpoint(tmp_path / "liar.pth", inflated=8 * 2**20, declared=1000)
    with pytest.raises(CheckpointRefused, match="does not inflate to the 1,000 bytes it declares"):
        vet_checkpoint(liar)


def test_honest_checkpoints_pass_and_limits_bind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"w": torch.randn(64, 64), "b": torch.zeros(64)}
    zipped, legacy = tmp_path / "new.pth", tmp_path / "old.pth"
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    counter = OpenCounter(monkeypatch)
    assert vet_checkpoint(zipped) is None and vet_checkpoint(legacy) is None
    assert counter.calls == 0                                   # torch.save stores: nothing to decompress
    assert torch.equal(read_checkpoint(zipped)["w"], state["w"])
    for path in (zipped, legacy):
        assert vet_checkpoint(path, CheckpointLimits(max_file_bytes=path.stat().st_size)) is None
        with pytest.raises(CheckpointRefused, match="the limit is"):
            vet_checkpoint(path, CheckpointLimits(max_file_bytes=path.stat().st_size - 1))
    with pytest.raises(CheckpointRefused, match="members"):
        vet_checkpoint(zipped, CheckpointLimits(max_members=2))


def test_checkpoint_with_overlap_or_a_bad_name_is_refused(bomb: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointRefused, match="share bytes"):
        vet_checkpoint(bomb, CheckpointLimits(max_ratio=1e12))
    data = b"x"
    bad = "archive/data\u202e.pkl".encode()
    header = local_header(bad, 0, zipfile.crc32(data), 1, 1)
    path = write_archive(tmp_path / "bidi.pth", header + data, [(bad, 0, zipfile.crc32(data), 1, 1, 0)])
    with pytest.raises(CheckpointRefused, match="U\\+202E"):
        vet_checkpoint(path)
