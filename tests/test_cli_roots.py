"""The trusted and untrusted roots a command declares (``--trust``, ``--entries``) end with the command: the
``ntirekit`` group restores ``$NTIREKIT_TRUSTED_ROOTS`` and ``$NTIREKIT_UNTRUSTED_ROOTS`` after it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.trust import TRUSTED_ROOTS_ENV, UNTRUSTED_ROOTS_ENV


@pytest.mark.parametrize("before", [None, "/somewhere/else"])
def test_a_commands_roots_end_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str | None) -> None:
    for variable in (TRUSTED_ROOTS_ENV, UNTRUSTED_ROOTS_ENV):
        if before is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, before)
    trusted, untrusted = tmp_path / "reviewed", tmp_path / "teams"
    trusted.mkdir()
    untrusted.mkdir()
    result = CliRunner().invoke(main, ["list", "--trust", str(trusted), "--entries", str(untrusted),
                                       "--entries", str(trusted), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), list)
    assert [os.environ.get(v) for v in (TRUSTED_ROOTS_ENV, UNTRUSTED_ROOTS_ENV)] == [before, before]
