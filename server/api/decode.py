"""The one place request input is decoded: header bytes and JSON text (REST bodies, WS frames).

aiohttp hands header bytes that are not UTF-8 over as lone surrogates (``surrogateescape``),
and JSON's ``\\ud800`` escapes decode to lone surrogates too. Neither can be encoded again:
bcrypt, SQLite, the JWT library, the cookie decrypter and the markdown sanitizer all
raise on them. So input is checked here, once, and refused with a clear error before any
of those sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# A JSON escape of a UTF-16 surrogate (paired or not): only bodies holding one need the walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


class InputError(ValueError):
    """Input that cannot be decoded; the message says why without echoing it."""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_strings(value: Any) -> None:
    """Raise InputError if any string (key or value) holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                raise InputError("has a string with an unpaired surrogate (\\ud800-\\udfff)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(raw: bytes | str) -> Any:
    """Decode JSON text; raise InputError for bad syntax or UTF-8, deep nesting, lone surrogates."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InputError("is nested too deeply") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise InputError("is not valid JSON") from None
    pattern = _SURROGATE_ESCAPE if isinstance(raw, bytes) else _SURROGATE_ESCAPE_TEXT
    if pattern.search(raw):  # type: ignore[arg-type]  # bytes pattern for bytes, str for str
        _check_strings(value)
    return value


def undecodable_header(headers: Mapping[str, str]) -> str | None:
    """Return the name of the first header whose value is not valid UTF-8, if any."""
    for name, value in headers.items():
        if not _encodable(value) or not _encodable(name):
            return name if _encodable(name) else "(unreadable name)"
    return None
