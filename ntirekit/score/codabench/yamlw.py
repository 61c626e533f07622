"""A small YAML writer for the files a Codabench bundle holds (``competition.yaml``, ``metadata.yaml``).

Block style, two-space indents; mappings (string keys, order kept; a key that is not a plain identifier, or that a YAML
1.1 reader takes for a boolean such as ``on``, is quoted), lists, strings, booleans, integers, floats and
``datetime`` values. Every string is written double-quoted with JSON's escapes, which YAML reads the same way (YAML
1.2 §7.3.1), so no value is ever read as another type (``"0801"``, ``"yes"``, ``"1e3"`` stay strings); a datetime is
written plain as ``YYYY-MM-DD HH:MM:SS``, the form Codabench's documentation asks for phase dates (PyYAML reads it as a
timestamp).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

__all__ = ["dump_yaml"]

#: plain keys that YAML 1.1 readers (PyYAML) take for booleans or null: written quoted
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"YAML key {key!r} must be a non-empty string")
    plain = key.replace("_", "").isalnum() and key.isascii() and not key[0].isdigit()
    return key if plain and key.lower() not in _RESERVED else json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"YAML value {value} is not a finite number")
        return repr(value)
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            raise ValueError("empty mappings are not written")
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                out.append(f"{pad}{_key(key)}:")
                out += _lines(item, indent + 2)
            else:
                out.append(f"{pad}{_key(key)}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        if not value:
            raise ValueError("empty lists are not written")
        out = []
        for item in value:
            if isinstance(item, (dict, list)):
                inner = _lines(item, indent + 2)
                out.append(f"{pad}- {inner[0][indent + 2:]}")
                out += inner[1:]
            else:
                out.append(f"{pad}- {_scalar(item)}")
        return out
    return [pad + _scalar(value)]


def dump_yaml(document: dict[str, Any], comment: str = "") -> str:
    """``document`` as YAML text; ``comment`` (one or more lines) goes on top as ``#`` lines."""
    head = [f"# {line}".rstrip() for line in comment.splitlines()]
    return "\n".join(head + _lines(document, 0)) + "\n"
