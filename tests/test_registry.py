"""Discovery: shipped baselines, third-party entry points, each folder once, any working directory; the tracks'
declarations; the declared input contract."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from ntirekit.core.errors import EntryError, NtirekitError, OptionError
from ntirekit.core.registry import BASELINES, ENTRY_POINT_GROUP, discover
from ntirekit.core.spec import REPO_ROOT, EntrySpec, InputContract, input_contract
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.eval.tracks import TRACKS, get_track
from tests.helpers.entries import write_entry


def test_baselines_ship_inside_the_package_and_name_kit_factories() -> None:
    registry = discover([BASELINES], include_defaults=False)
    assert len(registry) == 22
    for entry in registry.values():
        assert entry.folder.parent == BASELINES.resolve()
        assert entry.spec.factory.startswith("ntirekit.models."), entry.spec.factory
        assert not (entry.folder / "model.py").exists()      # no re-export files: the network lives in models/


def test_running_inside_another_checkout_does_not_clash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second checkout holds submissions with the same names as this one's: only the working directory's count."""
    other = tmp_path / "other-checkout"
    shutil.copytree(REPO_ROOT / "submissions", other / "submissions")
    monkeypatch.chdir(other)
    registry = discover()
    for name in ("team98_pqf_basicvsrpp_small", "team99_rlfn_pruned"):
        assert registry[name].folder == (other / "submissions" / name).resolve()
    monkeypatch.chdir(REPO_ROOT)            # and from the checkout itself, every folder once
    again = discover([REPO_ROOT / "submissions", BASELINES / "rlfn"])
    assert again["team99_rlfn_pruned"].folder == (REPO_ROOT / "submissions" / "team99_rlfn_pruned").resolve()
    assert len(again) == len(registry)


def _entry_point_package(site: Path, value: str) -> None:
    dist = site / "ntirekit_thirdparty-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ntirekit-thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nthirdparty = {value}\n")


def test_an_installed_package_adds_entries_through_the_entry_point_group(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    package = site / "thirdparty_entries"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_entry(package, "thirdparty_sr")
    _entry_point_package(site, "thirdparty_entries")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    registry = discover()
    assert registry["thirdparty_sr"].folder == (package / "thirdparty_sr").resolve()
    assert "rlfn" in registry


def test_a_broken_entry_point_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _entry_point_package(site, "no_such_module_anywhere")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(EntryError, match="entry point thirdparty = no_such_module_anywhere: cannot be loaded"):
        discover()


@pytest.mark.slow
def test_input_contract_is_declared_and_matches_the_models() -> None:
    """Every video baseline declares what its network checks for itself (its own min size and multiple)."""
    registry = discover([BASELINES], include_defaults=False)
    for entry in registry.select(track="vqe"):
        contract = input_contract(entry)
        model = entry.build()
        assert contract.frames == entry.spec.frames > 1
        assert contract.min_size >= model.min_input_size, entry.name
        own_multiple = getattr(model, "input_multiple", 1)    # the network's attribute, read by this test only
        assert contract.multiple % own_multiple == 0, entry.name
    assert input_contract(registry["basicvsrpp"]) == InputContract(256, 4, 1.0, 5)
    assert input_contract(discover([BASELINES], include_defaults=False)["span"]) == InputContract(1, 1, 1.0, 1)


def test_input_contract_pads_and_rejects_bad_values() -> None:
    assert InputContract(min_size=256, multiple=4).padded(100, 301) == (256, 304)
    assert InputContract(multiple=16).padded(17, 32) == (32, 32)
    base = {"name": "x", "track": "vqe", "task": "qe", "model": {"factory": "m.py:M"}}
    with pytest.raises(EntryError, match="unknown \\[input\\] keys"):
        EntrySpec.from_dict({**base, "input": {"min": 3}})
    with pytest.raises(EntryError, match="at least 1"):
        EntrySpec.from_dict({**base, "input": {"multiple": 0}})
    spec = EntrySpec.from_dict({**base, "input": {"min_size": 64, "multiple": 4}})
    assert EntrySpec.from_dict(spec.to_dict()).input == spec.input


def test_tracks_declare_what_the_runner_and_cli_read() -> None:
    assert set(TRACKS) == {"psnr", "runtime", "complexity", "overall", "vqe"}
    assert {n for n, t in TRACKS.items() if t.times} == {"runtime", "overall", "vqe"}
    assert {n for n, t in TRACKS.items() if t.entries == "vqe"} == {"vqe"}
    with pytest.raises(OptionError, match="unknown track 'load'"):
        get_track("load")


def test_track_options_are_typed(tmp_path: Path) -> None:
    entries = list(discover([write_entry(tmp_path, "tiny")], include_defaults=False).values())
    with pytest.raises(OptionError, match="the complexity track has no option 'chunk'"):
        run_track(entries, EvalOptions(track="complexity", extra={"chunk": 3}, progress=False))
    with pytest.raises(OptionError, match="option 'fvcore' takes bool, got 'yes'"):
        run_track(entries, EvalOptions(track="complexity", extra={"fvcore": "yes"}, progress=False))
    assert issubclass(OptionError, NtirekitError) and issubclass(OptionError, ValueError)


def test_records_carry_the_declared_schema(tmp_path: Path) -> None:
    entries = list(discover([write_entry(tmp_path, "tiny")], include_defaults=False).values())
    for name in ("psnr", "complexity"):
        options = EvalOptions(track=name, device="cpu", input_shape=(1, 3, 32, 32), progress=False)
        (rec,) = run_track(entries, options)
        assert rec["status"] == "ok", rec.get("error")
        assert set(TRACKS[name].record_fields) <= set(rec), set(TRACKS[name].record_fields) - set(rec)
        assert rec["options"]["data"] == TRACKS[name].default_data


@pytest.mark.slow
def test_the_cli_prints_kit_errors_as_one_line_and_bugs_as_tracebacks(tmp_path: Path) -> None:
    import subprocess
    import sys

    run_cli = "import sys; from ntirekit.cli import main; sys.argv = ['ntirekit', *sys.argv[1:]]; main()"
    bad = subprocess.run([sys.executable, "-c", run_cli, "eval", "--entry", "no_such_entry"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: no entry named 'no_such_entry'")
    code = textwrap.dedent("""
        import sys
        from ntirekit.cli import main
        from ntirekit.cli import list_cmd
        def broken(*a, **k):
            raise ZeroDivisionError("a bug")
        list_cmd.load_registry = broken
        sys.argv = ["ntirekit", "list"]
        main()
    """)
    bug = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ZeroDivisionError: a bug" in bug.stderr
