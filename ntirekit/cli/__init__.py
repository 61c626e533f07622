"""The ``ntirekit`` command: a thin click layer over the Python API.

Each command lives in its own module and is imported only when used (``ntirekit --help`` stays fast and a broken
optional dependency of one command never breaks the others). Every :class:`~ntirekit.core.errors.NtirekitError` a
command lets through becomes one error line and exit status 1; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import importlib
import signal

import click

from ntirekit.core.errors import NtirekitError, Terminated

#: command name -> "module:attribute" of the click command.
COMMANDS = {
    "list": "ntirekit.cli.list_cmd:list_entries",
    "eval": "ntirekit.cli.eval_cmd:eval_entries",
    "profile": "ntirekit.cli.profile_cmd:profile",
    "leaderboard": "ntirekit.cli.leaderboard_cmd:leaderboard",
    "reparam": "ntirekit.cli.reparam_cmd:reparam",
    "prune": "ntirekit.cli.prune_cmd:prune",
    "train": "ntirekit.cli.train_cmd:train",
    "finetune": "ntirekit.cli.train_cmd:finetune",
    "data": "ntirekit.cli.data_cmd:data",
    "pack": "ntirekit.cli.pack_cmd:pack",
    "check": "ntirekit.cli.check_cmd:check",
    "import-ntire": "ntirekit.cli.import_cmd:import_ntire",
    "regress": "ntirekit.cli.regress_cmd:regress",
    "score": "ntirekit.cli.score_cmd:score",
    "codabench": "ntirekit.cli.codabench_cmd:codabench",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context) -> object:
        signal.signal(signal.SIGTERM, _terminate)     # cleanup (jails, cgroups, temporary folders) runs on SIGTERM
        try:
            return super().invoke(ctx)
        except NtirekitError as exc:
            raise click.ClickException(one_line(exc)) from None
        except Terminated as exc:
            raise SystemExit(exc.exit_code) from None


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ntirekit")
def main() -> None:
    """Package, measure, rank and submit NTIRE-style restoration entries."""
