"""Weight resolution, verification and strict loading (synthetic checkpoints plus the real upstream formats)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch

from ntirekit.core.registry import discover
from ntirekit.core.weights import (WeightsError, cache_dir, extract_state_dict, normalise_keys, read_checkpoint,
                                   resolve_weights, sha256_of)
from tests.helpers.entries import write_entry


def _tiny_entry(tmp_path: Path, state_file: Path, extra: str = "", sha: str | None = None):
    digest = sha if sha is not None else hashlib.sha256(state_file.read_bytes()).hexdigest()
    toml = f'\n[weights]\nfile = "{state_file.name}"\nurl = "{state_file.as_uri()}"\nsha256 = "{digest}"\n{extra}'
    write_entry(tmp_path / "entries", "tiny", extra_toml=toml)
    return discover([tmp_path / "entries"], include_defaults=False)["tiny"]


def _reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"conv.weight": torch.randn(48, 3, 3, 3), "conv.bias": torch.randn(48)}


@pytest.fixture()
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NTIREKIT_WEIGHTS", str(tmp_path / "local"))
    monkeypatch.setenv("NTIREKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "local").mkdir()
    return tmp_path


def test_sha256_of_matches_hashlib(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"ntire" * 100_000)
    assert sha256_of(f) == hashlib.sha256(b"ntire" * 100_000).hexdigest()


def test_download_then_cache_then_local_folder(isolated_env: Path) -> None:
    upstream = isolated_env / "upstream" / "tiny.pth"
    upstream.parent.mkdir()
    torch.save({"params": {f"module.{k}": v for k, v in _reference_state().items()}}, upstream)
    entry = _tiny_entry(isolated_env, upstream)
    # 1) not local: downloaded (file:// URL) into the cache and verified
    path = resolve_weights(entry)
    assert path == cache_dir() / "tiny.pth" and path.read_bytes() == upstream.read_bytes()
    # 2) nesting under "params" and "module." are undone; the load is strict and exact
    model = entry.load()
    assert torch.equal(model.conv.weight, _reference_state()["conv.weight"])
    # 3) a copy in $NTIREKIT_WEIGHTS wins over the cache
    local = isolated_env / "local" / "tiny.pth"
    local.write_bytes(upstream.read_bytes())
    assert resolve_weights(entry) == local
    # 4) an explicit path wins over everything
    explicit = isolated_env / "mine.pth"
    torch.save(_reference_state(), explicit)
    assert resolve_weights(entry, explicit) == explicit


def test_a_weights_folder_that_is_not_there_is_named_not_downloaded_around(isolated_env: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``NTIREKIT_WEIGHTS=../shared/data/weights`` typed from another folder: the error names the folder (and where
    a relative one was looked for), and nothing is downloaded in its place."""
    upstream = isolated_env / "upstream" / "tiny.pth"
    upstream.parent.mkdir()
    torch.save(_reference_state(), upstream)
    entry = _tiny_entry(isolated_env, upstream)
    monkeypatch.chdir(isolated_env)
    monkeypatch.setenv("NTIREKIT_WEIGHTS", "../shared/data/weights")
    with pytest.raises(WeightsError, match=r"tiny: NTIREKIT_WEIGHTS names \.\./shared/data/weights, which is not a "
                                           r"folder \(relative to "):
        resolve_weights(entry)
    assert not (cache_dir() / "tiny.pth").exists()


def test_hash_mismatch_is_an_error(isolated_env: Path) -> None:
    upstream = isolated_env / "tiny.pth"
    torch.save(_reference_state(), upstream)
    entry = _tiny_entry(isolated_env, upstream, sha="0" * 64)
    (isolated_env / "local" / "tiny.pth").write_bytes(upstream.read_bytes())
    with pytest.raises(WeightsError, match=r"tiny: .*tiny.pth has sha256 .*expected 000000000000"):
        resolve_weights(entry)


def test_failed_download_leaves_no_file(isolated_env: Path) -> None:
    upstream = isolated_env / "tiny.pth"
    torch.save(_reference_state(), upstream)
    entry = _tiny_entry(isolated_env, upstream, sha="1" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        resolve_weights(entry)
    assert not (cache_dir() / "tiny.pth").exists()
    assert list(cache_dir().iterdir()) == []


def test_missing_without_download(isolated_env: Path) -> None:
    upstream = isolated_env / "tiny.pth"
    torch.save(_reference_state(), upstream)
    entry = _tiny_entry(isolated_env, upstream)
    with pytest.raises(WeightsError, match="tiny: weights tiny.pth not found in"):
        resolve_weights(entry, download=False)
    assert not entry.has_weights()


def test_key_mismatch_names_entry_file_and_keys(isolated_env: Path) -> None:
    upstream = isolated_env / "tiny.pth"
    state = _reference_state()
    state["extra.weight"] = torch.zeros(1)
    state["conv.bias"] = torch.zeros(5)
    torch.save(state, upstream)
    entry = _tiny_entry(isolated_env, upstream)
    with pytest.raises(WeightsError) as info:
        entry.load()
    message = str(info.value)
    assert message.startswith("tiny: tiny.pth does not fit the model:")
    assert "unexpected 1: extra.weight" in message and "conv.bias (5,)≠(48,)" in message
    assert "\n" not in message


def test_rename_and_strip_prefix() -> None:
    state = {"module.model.fea_conv.weight": torch.zeros(1), "model.B1.c.bias": torch.ones(1)}
    out = normalise_keys(state, strip_prefix="model.", rename=(("fea_conv.", "conv_1."), ("B1.", "block_1.")))
    assert sorted(out) == ["block_1.c.bias", "conv_1.weight"]


def test_nesting_explicit_and_detected() -> None:
    t = {"a": torch.zeros(1)}
    assert extract_state_dict({"net": t}) == t
    assert extract_state_dict({"model_state_dict": t, "epoch": 3}) == t
    assert extract_state_dict({"ema": {"x": t}}, key="ema.x") == t
    with pytest.raises(WeightsError, match="nested key 'ema.y' not found"):
        extract_state_dict({"ema": {"x": t}}, key="ema.y")
    with pytest.raises(WeightsError, match="not a state dict of tensors"):
        extract_state_dict({"epoch": 3})


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/ntirekit-pwned-by-test"),))


def test_code_in_pickle_is_refused(tmp_path: Path) -> None:
    marker = Path("/tmp/ntirekit-pwned-by-test")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _Payload()}, evil, pickle_protocol=2)
    with pytest.raises(WeightsError, match="not a plain tensor checkpoint"):
        read_checkpoint(evil)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(WeightsError):
        read_checkpoint(raw)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_reference_state(), good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(WeightsError, match="bad.pth is not a plain tensor checkpoint"):
        read_checkpoint(bad)


@pytest.mark.parametrize("name, tensors, prefix", [
    ("IMDN_x4.pth", 92, "module."),           # legacy (non-zip) torch format, DataParallel keys
    ("rlfn_ntire_x4.pth", 78, ""),            # zip format
])
def test_real_upstream_formats(weights_dir: Path, name: str, tensors: int, prefix: str) -> None:
    state = extract_state_dict(read_checkpoint(weights_dir / name))
    assert len(state) == tensors
    assert all(k.startswith(prefix) for k in state)
    assert not any(k.startswith("module.") for k in normalise_keys(state))


def test_a_download_never_writes_outside_the_cache(isolated_env: Path) -> None:
    upstream = isolated_env / "upstream" / "tiny.pth"
    upstream.parent.mkdir()
    torch.save(_reference_state(), upstream)
    digest = hashlib.sha256(upstream.read_bytes()).hexdigest()
    # an untrusted spec whose file climbs out of every folder it is joined to
    toml = f'\n[weights]\nfile = "../../escaped.pth"\nurl = "{upstream.as_uri()}"\nsha256 = "{digest}"\n'
    write_entry(isolated_env / "entries", "tiny", extra_toml=toml)
    skipped: list[str] = []
    registry = discover([isolated_env / "entries"], include_defaults=False, report=skipped.append)
    assert "tiny" not in registry and "inside the entry's folder" in skipped[0]     # refused before any download
    assert not cache_dir().exists() or not any(cache_dir().iterdir())
    (isolated_env / "entries" / "tiny" / "entry.toml").write_text(
        (isolated_env / "entries" / "tiny" / "entry.toml").read_text().replace("../../escaped.pth", "escaped.pth"))
    entry = discover([isolated_env / "entries"], include_defaults=False)["tiny"]
    assert resolve_weights(entry) == cache_dir() / "escaped.pth"                     # the cache holds it by name
    assert [p.name for p in cache_dir().iterdir()] == ["escaped.pth"]
