"""TOML files: a minimal writer for ``entry.toml`` (the standard library reads TOML but does not write it) and the
one reader every TOML file of the kit goes through (:func:`load_file`: any problem is one line).

Writer: top-level scalars first, then one ``[table]`` per top-level dict; dicts deeper down become inline tables.
Supports str, bool, int, float (nan/inf too), lists and dicts: everything an entry spec holds.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text (parseable by ``tomllib.loads`` back into an equal dict)."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_key(name)}]"] + [f"{_key(str(k))} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def load_file(path: str | os.PathLike, error: type[Exception], what: str = "TOML file") -> dict[str, Any]:
    """The parsed TOML file at ``path``; a missing, unreadable or invalid file raises ``error`` with one line
    naming ``path`` (``what`` says what the file is meant to be: "no such <what>")."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None
