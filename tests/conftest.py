"""Shared fixtures: where the upstream test material lives (read in place, never copied into the project).

``NTIREKIT_DATA`` points at the shared data folder (default ``../shared/data`` beside the checkout); when it is set,
``NTIREKIT_WEIGHTS`` defaults to its ``weights/`` folder so entries resolve their upstream checkpoints offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ntirekit.core.trust import TRUSTED_ROOTS_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NTIREKIT_DATA", REPO.parent / "shared" / "data")).resolve()
os.environ.setdefault("NTIREKIT_WEIGHTS", str(SHARED_DATA / "weights"))
# Never let a test reach the network or the user's own cache.
os.environ.setdefault("NTIREKIT_CACHE", str(REPO / ".pytest_cache" / "ntirekit-weights"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not found (set NTIREKIT_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def weights_dir(shared_data: Path) -> Path:
    return shared_data / "weights"


@pytest.fixture(scope="session")
def set5_dir(shared_data: Path) -> Path:
    return shared_data / "images" / "Set5"


@pytest.fixture(scope="session")
def video_dir(shared_data: Path) -> Path:
    return shared_data / "video"


@pytest.fixture
def reviewed_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` declared trusted, as by an organizer who has reviewed the code written there: import-ntire marks
    its output untrusted, so tests that build imported entries themselves use this (the door: ntirekit.core.trust)."""
    monkeypatch.setenv(TRUSTED_ROOTS_ENV, str(tmp_path))
    return tmp_path
