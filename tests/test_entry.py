"""Entry specs, discovery and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ntirekit.core.registry import discover
from ntirekit.core.spec import EntryError, EntrySpec, read_spec
from tests.helpers.entries import write_entry


def test_spec_round_trip_and_defaults(tmp_path: Path) -> None:
    folder = write_entry(tmp_path, "tiny", data_range=255.0)
    spec = read_spec(folder)
    assert (spec.name, spec.track, spec.task, spec.scale, spec.data_range) == ("tiny", "esr", "sr", 4, 255.0)
    assert dict(spec.kwargs) == {"scale": 4}
    assert EntrySpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(TypeError):
        spec.kwargs["scale"] = 2  # type: ignore[index]  # frozen


@pytest.mark.parametrize("patch, message", [
    ({"track": "xyz"}, "track must be one of"),
    ({"data_range": 2.0}, "data_range must be 1.0 or 255.0"),
    ({"model": {"factory": "nofactory"}}, "factory must look like"),
    ({"colour": 1}, "unknown keys"),
    ({"weights": {"url": "x"}}, "needs 'file'"),
    ({"weights": {"file": "a.pth", "sha256": "abc"}}, "sha256 is not 64 hex"),
    ({"weights": {"file": "model_zoo/.."}}, "must name a file"),
    ({"weights": {"file": "a.pth", "rename": ["ab"]}}, "list of \\[old, new\\] prefix pairs"),
    ({"scale": "4"}, "scale must be an integer"),
    ({"scale": 2.5}, "scale must be an integer"),
    ({"frames": 0}, "at least 1"),
    ({"data_range": "255"}, "data_range must be a number"),
    ({"model": "model.py:M"}, "\\[model\\] must be a table"),
    ({"model": {"factory": "model.py:M", "kwargs": [1]}}, "kwargs must be a table"),
    # a mistyped key says which known key it resembles
    ({"data_rnage": 1.0}, r"unknown keys \['data_rnage'\] \('data_rnage': did you mean 'data_range'\?\)"),
    ({"weights": {"file": "a.pth", "stirct": False}}, r"unknown \[weights\] keys .*did you mean 'strict'\?"),
    ({"model": {"factory": "model.py:M", "kwarg": {}}}, r"unknown \[model\] keys .*did you mean 'kwargs'\?"),
    ({"input": {"min_sise": 8}}, r"unknown \[input\] keys .*did you mean 'min_size'\?"),
])
def test_bad_specs_are_one_line_errors(patch: dict, message: str) -> None:
    base = {"name": "x", "track": "esr", "task": "sr", "model": {"factory": "model.py:M"}}
    with pytest.raises(EntryError, match=message) as info:
        EntrySpec.from_dict({**base, **patch})
    assert "\n" not in str(info.value)


def test_not_toml(tmp_path: Path) -> None:
    (tmp_path / "entry.toml").write_text("name = [unclosed")
    with pytest.raises(EntryError, match="not valid TOML"):
        read_spec(tmp_path)
    (tmp_path / "entry.toml").write_bytes(b"name = \"\xff\xfe\"\n")      # not UTF-8
    with pytest.raises(EntryError, match="not valid TOML"):
        read_spec(tmp_path)
    with pytest.raises(EntryError, match="no such entry.toml"):
        read_spec(tmp_path / "missing")


def test_discovery_finds_nested_entries_and_builds(tmp_path: Path) -> None:
    write_entry(tmp_path / "a", "one")
    write_entry(tmp_path / "b" / "deeper", "two", scale=2)
    registry = discover([tmp_path], include_defaults=False)
    assert list(registry) == ["one", "two"]
    model = registry["two"].load(pretrained=False)
    assert model(torch.zeros(1, 3, 5, 7)).shape == (1, 3, 10, 14)
    assert not model.training


def test_duplicate_names_are_reported_and_the_later_one_skipped(tmp_path: Path) -> None:
    """Issue 12: a name clash is one line and the later folder is skipped; the first one stays usable."""
    write_entry(tmp_path / "a", "same")
    write_entry(tmp_path / "b", "same")
    lines: list[str] = []
    registry = discover([tmp_path], include_defaults=False, report=lines.append)
    assert registry["same"].folder == (tmp_path / "a" / "same").resolve()
    assert len(lines) == 1 and "'same' is used by both" in lines[0] and str(tmp_path / "b" / "same") in lines[0]


def test_same_folder_through_two_roots_is_taken_once(tmp_path: Path) -> None:
    write_entry(tmp_path, "one")
    assert list(discover([tmp_path, tmp_path / "one"], include_defaults=False)) == ["one"]


def test_unknown_name_lists_known(tmp_path: Path) -> None:
    write_entry(tmp_path, "one")
    with pytest.raises(EntryError, match=r"no entry named 'two' \(known: one\)"):
        discover([tmp_path], include_defaults=False)["two"]


def test_a_mistyped_name_gets_a_did_you_mean(tmp_path: Path) -> None:
    for name in ("rlfn_ntire", "imdn"):
        write_entry(tmp_path, name)
    with pytest.raises(EntryError, match=r"no entry named 'rlfn_ntrie' \(did you mean 'rlfn_ntire'\? known: "):
        discover([tmp_path], include_defaults=False)["rlfn_ntrie"]
    with pytest.raises(EntryError, match=r"no entry named 'xyz' \(known: imdn, rlfn_ntire\)"):
        discover([tmp_path], include_defaults=False)["xyz"]       # nothing close: no guess


def test_broken_model_code_names_the_entry(tmp_path: Path) -> None:
    write_entry(tmp_path, "broken", model_code="raise RuntimeError('boom')\n")
    entry = discover([tmp_path], include_defaults=False)["broken"]
    with pytest.raises(EntryError, match=r"broken: importing model.py failed: RuntimeError: boom"):
        entry.build()


def test_factory_outside_folder_refused(tmp_path: Path) -> None:
    write_entry(tmp_path, "escape", factory="../evil.py:M")
    with pytest.raises(EntryError, match="outside the entry folder"):
        discover([tmp_path], include_defaults=False)["escape"].build()


def test_select_by_track(tmp_path: Path) -> None:
    write_entry(tmp_path, "img")
    write_entry(tmp_path, "vid", track="vqe", task="qe", scale=1)
    registry = discover([tmp_path], include_defaults=False)
    assert [e.name for e in registry.select(track="vqe")] == ["vid"]
    assert [e.name for e in registry.select(["vid", "img"])] == ["vid", "img"]


def test_toml_writer_round_trips_a_spec(tmp_path: Path) -> None:
    import tomllib

    from ntirekit.core import tomlw

    spec = read_spec(write_entry(tmp_path, "tiny", extra_toml='\n[published]\nparams = 1\n"odd key" = "a\\"b"\n'))
    data = spec.to_dict()
    data["published"]["ratio"] = 0.1
    assert tomllib.loads(tomlw.dumps(data)) == data
    assert EntrySpec.from_dict(tomllib.loads(tomlw.dumps(data))).published["odd key"] == 'a"b'
