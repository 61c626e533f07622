"""``ntirekit --help`` lists the commands from :data:`ntirekit.cli.COMMANDS` without importing any command module,
and the list it writes is the one click would write from the commands themselves."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from ntirekit.cli import COMMANDS, LazyGroup, main


def test_the_table_holds_each_commands_short_help() -> None:
    ctx = click.Context(main)
    for name, (_target, short_help) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and not command.hidden, name
        assert short_help == command.get_short_help_str(limit=10**6), name


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_the_command_list_is_clicks(width: int) -> None:
    ctx = click.Context(main, terminal_width=width)
    ours, clicks = ctx.make_formatter(), ctx.make_formatter()
    main.format_commands(ctx, ours)
    click.Group.format_commands(main, ctx, clicks)      # click's own: imports every command to ask it
    assert ours.getvalue() == clicks.getvalue() and "Commands" in ours.getvalue()


def test_help_imports_no_command_module() -> None:
    modules = sorted({target.split(":")[0] for target, _ in COMMANDS.values()})
    script = ("import sys; from ntirekit.cli import main\n"
              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              f"print([m for m in {modules!r} if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "Commands:" in run.stdout
    for name in COMMANDS:
        assert f"  {name} " in run.stdout, name
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_lazy_group_lists_every_command() -> None:
    assert LazyGroup().list_commands(click.Context(main)) == sorted(COMMANDS)
