"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from ntirekit.entry import EntryError, Registry, discover


def entries_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--entries PATH`` (repeatable): extra folders to discover entries in."""
    return click.option("--entries", "entry_roots", multiple=True, type=click.Path(exists=True, file_okay=False),
                        help="Extra folder of entries (repeatable); baselines/ and submissions/ are always searched.")(func)


def load_registry(entry_roots: tuple[str, ...] = ()) -> Registry:
    try:
        return discover(entry_roots)
    except EntryError as exc:
        raise click.ClickException(str(exc)) from None


def one_line_errors(*errors: type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn the listed exception types (plus :class:`EntryError`) into one clear error line and exit status 1."""
    caught = (EntryError, *errors)

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except caught as exc:
                raise click.ClickException(str(exc).strip().splitlines()[0] if str(exc).strip() else
                                           type(exc).__name__) from None
        return inner
    return wrap


def echo_err(message: str) -> None:
    click.echo(message, err=True)
    sys.stderr.flush()
