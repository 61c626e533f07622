"""One bad entry never stops the others at discovery (issue 12): a malformed entry.toml, an invalid name or a name
clash under a root is reported in one line and skipped; the good entries still run; an over-long name on the
command line is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.names import MAX_ENTRY_NAME
from ntirekit.core.registry import discover
from tests.helpers.entries import write_entry
from tests.helpers.sandbox import EXPECTED_SANDBOX


def bad_world(root: Path) -> None:
    write_entry(root, "fine")
    write_entry(root / "clash", "imdn")                       # a submission claiming a baseline's name
    write_entry(root / "twice", "fine")                       # a second folder with an earlier entry's name
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "entry.toml").write_text("name = [unclosed\n")
    bad_name = write_entry(root, "evil")
    (bad_name / "entry.toml").write_text((bad_name / "entry.toml").read_text().replace('"evil"', '"../../x"'))


def test_bad_entries_are_reported_once_and_skipped(tmp_path: Path) -> None:
    bad_world(tmp_path / "subs")
    lines: list[str] = []
    registry = discover([tmp_path / "subs"], report=lines.append)
    assert "fine" in registry and "imdn" in registry
    assert str(registry["imdn"].folder).endswith("baselines/imdn")          # the baseline, not the impostor
    assert registry["fine"].folder == (tmp_path / "subs" / "fine").resolve()
    assert len(lines) == 4 and lines == registry.skipped
    assert all("\n" not in line and line.startswith("skipped ") for line in lines)
    joined = "\n".join(lines)
    for folder in ("broken", "evil", "clash/imdn", "twice/fine"):
        assert str(tmp_path / "subs" / folder) in joined
    assert "bad entry name '../../x'" in joined


@pytest.mark.slow
def test_eval_still_runs_a_good_entry_and_long_names_are_one_line(tmp_path: Path) -> None:
    bad_world(tmp_path / "subs")
    result = CliRunner().invoke(main, ["eval", "--track", "complexity", "--entries", str(tmp_path / "subs"),
                                       "--entry", "fine", "--out", str(tmp_path / "out"), "--quiet",
                                       "--leaderboard", "none", "--input-shape", "1,3,16,16"])
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped ") == 4
    assert (tmp_path / "out").is_dir() and any(p.name.startswith("fine__") for p in (tmp_path / "out").iterdir())
    long = CliRunner().invoke(main, ["eval", "--entry", "a" * (MAX_ENTRY_NAME + 1), "--out", str(tmp_path / "o")])
    assert long.exit_code == 1 and "Traceback" not in long.output
    last = long.output.strip().splitlines()[-1]
    assert last.startswith("Error: the entry name 'aaaa") and len(last) < 160
    assert last.endswith(f"has {MAX_ENTRY_NAME + 1} characters; at most {MAX_ENTRY_NAME} are allowed")


@pytest.mark.slow
def test_entries_folders_are_sandboxed_unless_trusted(tmp_path: Path) -> None:
    import json
    write_entry(tmp_path / "subs", "fine")
    common = ["eval", "--track", "complexity", "--entries", str(tmp_path / "subs"), "--entry", "fine", "--quiet",
              "--leaderboard", "none", "--input-shape", "1,3,16,16"]
    records = {}
    for label, extra in (("default", []), ("trusted", ["--trust", str(tmp_path / "subs")])):
        out = tmp_path / label
        result = CliRunner().invoke(main, [*common, *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        records[label] = json.loads(next(out.glob("fine__*.json")).read_text())
    assert records["default"]["sandbox"] == EXPECTED_SANDBOX and "sandbox" not in records["trusted"]
    assert records["default"]["params"] == records["trusted"]["params"] == 3 * 48 * 9 + 48
