"""The ``ntirekit`` command: a thin click layer over the Python API.

Each command lives in its own module and is imported only when used (``ntirekit --help`` stays fast and a broken
optional dependency of one command never breaks the others). Every :class:`~ntirekit.core.errors.NtirekitError` a
command lets through becomes one error line and exit status 1; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import importlib
import signal
import textwrap
from gettext import gettext

import click

from ntirekit.core.errors import NtirekitError, Terminated
from ntirekit.core.text import clean_text
from ntirekit.core.trust import declared_roots

#: command name -> ("module:attribute" of the click command, its short help). The short help is the first sentence of
#: the command's docstring (``get_short_help_str`` with no length limit; tests/test_cli_help.py keeps them equal):
#: ``ntirekit --help`` lists the commands from this table without importing any of their modules.
COMMANDS = {
    "list": ("ntirekit.cli.list_cmd:list_entries",
             "List entries: name, track, task, scale, data range, params and whether weights are available."),
    "eval": ("ntirekit.cli.eval_cmd:eval_entries",
             "Evaluate entries on a track; one JSON per entry in --out, a table at the end."),
    "profile": ("ntirekit.cli.profile_cmd:profile",
                "Count (and optionally time) one entry, on its exported graph (an untrusted entry's code runs in the "
                "sandbox)."),
    "leaderboard": ("ntirekit.cli.leaderboard_cmd:leaderboard",
                    "Rank RESULTS (result JSON files, folders of them, published-figures CSV files) under an NTIRE "
                    "protocol."),
    "reparam": ("ntirekit.cli.reparam_cmd:reparam",
                "Merge every re-parameterizable block of ENTRY into plain convs and write the result as a deploy "
                "entry."),
    "prune": ("ntirekit.cli.prune_cmd:prune",
              "Prune coupled channel groups of ENTRY by importance and write the pruned entry."),
    "train": ("ntirekit.cli.train_cmd:train",
              "Train ENTRY from a (seeded) random initialisation: an image entry on HR images (random patches, flips "
              "and rotations), a video entry on compressed/clean clip pairs (random crops of N-frame sequences, "
              "flips, rotations, reversal; duplicate frames dropped)."),
    "finetune": ("ntirekit.cli.train_cmd:finetune",
                 "Fine-tune ENTRY from its weights (or --weights); the best weights become an entry folder."),
    "data": ("ntirekit.cli.data_cmd:data",
             "Video data: render clean clips from photos, compress clean clips with HEVC (low-delay P, PQF QP "
             "pattern) and inspect clips."),
    "pack": ("ntirekit.cli.pack_cmd:pack",
             "Validate SRC as a submission and pack it into a zip (exit status 1 when it is rejected)."),
    "check": ("ntirekit.cli.check_cmd:check",
              "Check a submission zip without extracting outside a temporary folder (exit status 1 when REJECTED)."),
    "import-ntire": ("ntirekit.cli.import_cmd:import_ntire",
                     "Turn REPO_DIR (models/teamXX_Name.py + model_zoo/ + test_demo.py) into entry folders in --out."),
    "regress": ("ntirekit.cli.regress_cmd:regress",
                "Compare fresh measurements with metrics/<fingerprint id>/ (exit status 1 listing every regression)."),
    "score": ("ntirekit.cli.score_cmd:score",
              "Score an uploaded results zip or folder (esr-results: SR PNGs named like the HR images; vqe-results: "
              "one folder of PNG frames per video) against ground truth, exactly as 'eval' scores the same outputs."),
    "codabench": ("ntirekit.cli.codabench_cmd:codabench",
                  "A challenge's validation phase on Codabench: the scoring program and the competition bundle."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, as click writes it, from :data:`COMMANDS` (no command module imported)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))        # click's: three times the default spacing
        with formatter.section(gettext("Commands")):
            formatter.write_dl([(name, _shorten(COMMANDS[name][1], limit)) for name in names])

    def invoke(self, ctx: click.Context) -> object:
        signal.signal(signal.SIGTERM, _terminate)     # cleanup (jails, cgroups, temporary folders) runs on SIGTERM
        try:
            with declared_roots():        # the roots --trust and --entries declare end with the command
                return super().invoke(ctx)
        except NtirekitError as exc:
            raise click.ClickException(one_line(exc)) from None
        except Terminated as exc:
            raise SystemExit(exc.exit_code) from None


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, ending "..." when cut (as click shortens help)."""
    if len(text) <= limit:
        return text
    if limit < 3:
        return "..."
    return textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message, cleaned of terminal sequences and control characters
    (:func:`ntirekit.core.text.clean_text`: it may quote a team's text); its type's name when it has none."""
    text = clean_text(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ntirekit")
def main() -> None:
    """Package, measure, rank and submit NTIRE-style restoration entries."""
