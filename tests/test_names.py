"""Entry names: letters, digits and ``_.-``, at most 100 characters, never ``.`` or ``..``; one line otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntirekit.core.names import MAX_ENTRY_NAME, EntryNameError, check_entry_name, entry_name_problem
from tests.test_check import TEAM, assert_rejected, folder_members, run_check, team_entry, zip_of


@pytest.mark.parametrize("name", ["imdn", "team04_rlfn", "RLFN-x4.v2", "a", "_", "x" * MAX_ENTRY_NAME, "..a", ".a."])
def test_valid_names(name: str) -> None:
    assert entry_name_problem(name) is None and check_entry_name(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "empty"), (".", "not an entry name"), ("..", "not an entry name"),
    ("x" * (MAX_ENTRY_NAME + 1), "101 characters"), ("a" * 400_000, "400000 characters"),
    ("../../../x", ascii("/")), ("a\\b", ascii("\\")), ("a b", ascii(" ")), ("a\nb", ascii("\n")),
    ("rlfn\u202egnp", ascii("\u202e")), ("r\u00e9sum\u00e9", ascii("\u00e9")), ("C:x", ascii(":")),
    ("a\x00b", ascii("\x00")), (7, "text, not int"),
])
def test_invalid_names_are_one_line_errors(name: object, why: str) -> None:
    problem = entry_name_problem(name)
    assert problem is not None and "\n" not in problem and len(problem) < 200
    assert why in problem
    with pytest.raises(EntryNameError) as caught:
        check_entry_name(name)
    assert str(caught.value) == problem


def test_check_refuses_an_over_long_entry_name(tmp_path: Path) -> None:
    folder = team_entry(tmp_path / "src")
    spec = folder / "entry.toml"
    long_name = "team04_" + "a" * 120
    spec.write_text(spec.read_text().replace(f'name = "{TEAM}"', f'name = "{long_name}"'))
    assert long_name in spec.read_text()
    work = tmp_path / "work"
    work.mkdir()
    report = run_check(zip_of(tmp_path / "long.zip", folder_members(folder)), work)
    assert_rejected(report, "wrong-name")
    assert any("127 characters; at most 100" in p.message for p in report.problems)
