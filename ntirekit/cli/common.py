"""Options and helpers shared by several commands."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from ntirekit.cli import one_line
from ntirekit.core.errors import EntryError, NtirekitError
from ntirekit.core.registry import Registry, discover
from ntirekit.core.trust import add_roots
from ntirekit.pack import unpack


def entries_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--entries PATH`` (repeatable): extra folders, or submission zips, to discover entries in."""
    return click.option("--entries", "entry_roots", multiple=True, type=click.Path(exists=True),
                        help="Extra folder of entries or a submission zip (repeatable); baselines/ and submissions/ "
                             "are always searched.")(func)


def unpack_submission(zip_path: str) -> Path:
    """Check a submission zip and extract it into a new temporary folder marked untrusted (its entries then run
    isolated), removed when the command exits; a rejected zip is a :class:`click.ClickException` listing its
    problems."""
    dest = Path(tempfile.mkdtemp(prefix="ntirekit-submission-"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    report, root = unpack(zip_path, dest)
    if root is None:
        shutil.rmtree(dest, ignore_errors=True)
        problems = "; ".join(p.message for p in report.problems) or "rejected"
        raise click.ClickException(f"{zip_path}: REJECTED: {problems}")
    return root


def trust_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--trust DIR`` (repeatable): entry folders whose code the organizer has reviewed, run in this process. The
    folders become trusted roots (:func:`ntirekit.core.trust.add_roots`) as the option is read; the command gets no
    value, and the ``ntirekit`` group restores the roots after the command."""
    return click.option("--trust", "trusted", multiple=True, type=click.Path(exists=True, file_okay=False),
                        expose_value=False, callback=lambda _c, _p, v: add_roots(trusted=v),
                        help="A folder of entries whose code you have reviewed: their code may run in this process "
                             "(repeatable). Other --entries folders, submissions/ and zips run in the sandbox "
                             "only.")(func)


def entry_root_paths(entry_roots: tuple[str, ...] = ()) -> list[Path]:
    """The folders behind ``--entries``: folders as given, submission zips checked and unpacked; all of them are
    untrusted roots from now on in this process (:func:`ntirekit.core.trust.add_roots`) unless ``--trust`` names
    them."""
    paths = [unpack_submission(r) if r.lower().endswith(".zip") else Path(r) for r in entry_roots]
    add_roots(untrusted=[p for p in paths if p.is_dir()])
    return paths


def load_registry(entry_roots: tuple[str, ...] = ()) -> Registry:
    """Every entry of the default roots and ``--entries``; a bad or clashing entry is one error line."""
    roots = entry_root_paths(entry_roots)
    try:
        return discover(roots)
    except EntryError as exc:
        raise click.ClickException(str(exc)) from None


def parse_shape(text: str, ranks: tuple[int, ...] = (4,)) -> tuple[int, ...]:
    """``--input-shape``: ``"1,3,256,256"`` (or ``1x3x256x256``) as a tuple of positive ints of one of ``ranks``
    lengths (4: N,C,H,W images; 5: N,T,C,H,W clips); anything else is a :class:`click.BadParameter`."""
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        parts = ()
    if len(parts) not in ranks or min(parts) < 1:
        forms = " or ".join({4: "N,C,H,W (images)", 5: "N,T,C,H,W (clips)"}[r] for r in ranks)
        raise click.BadParameter(f"input shape is {forms} in positive integers, e.g. 1,3,256,256; got {text!r}")
    return parts


def one_line_errors(*errors: type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn :class:`~ntirekit.core.errors.NtirekitError` (and the listed types, e.g. ``OSError`` for files the user
    named) into one clear error line and exit status 1; anything else is a bug and keeps its traceback. (The
    ``ntirekit`` group does the same for NtirekitError; this serves commands invoked on their own.)"""
    caught = (NtirekitError, *errors)

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except caught as exc:
                raise click.ClickException(one_line(exc)) from None
        return inner
    return wrap


def echo_err(message: str) -> None:
    click.echo(message, err=True)
    sys.stderr.flush()


_JSON_STREAMS: list[TextIO] = []


def json_output(func: Callable[..., Any]) -> Callable[..., Any]:
    """For a command with ``--json`` (its ``as_json`` parameter): while it runs with ``--json``, whatever the code
    prints (a team model's own ``print``) goes to stderr, so that stdout holds only what :func:`echo_json` writes."""
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("as_json"):
            return func(*args, **kwargs)
        _JSON_STREAMS.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return func(*args, **kwargs)
        finally:
            _JSON_STREAMS.pop()
    return inner


def echo_json(text: str) -> None:
    """Write ``text`` (the JSON document) to the real stdout, also inside :func:`json_output`."""
    click.echo(text, file=_JSON_STREAMS[-1] if _JSON_STREAMS else None)
