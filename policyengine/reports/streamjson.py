"""Writing a large JSON report item by item, as exactly the text ``json.dumps(value, indent=2)`` makes of
the whole: a report of ten thousand resources is never held as one value, nor as one string.

The value is given with a placeholder where each long list goes; the placeholders are dumped with the
rest, and each is replaced, as the text is written, by its list dumped one item at a time at the
placeholder's depth. The encoder escapes every control character inside a string (``ensure_ascii``), so
each newline in an item's own dump is a line break, and indenting it by the depth of the list is the
encoder's output for the item inside the whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import IO, Any

_MARK = "\x00stream:"  # dumped as "\u0000stream:NAME": no report string is dumped as that


def placeholder(name: str) -> str:
    """The value standing for the list ``name`` until it is written."""
    return _MARK + name


def write(out: IO[str], value: Any, lists: Mapping[str, Callable[[], Iterable[Any]]]) -> None:
    """``json.dumps(value, indent=2) + "\\n"`` with each ``placeholder(name)`` in it replaced by the
    list ``lists[name]()`` makes, each list made only when the text reaches it."""
    text = dumps(value)  # not json.dumps: its indenting encoder is a reference cycle, made on each call
    start = 0
    for name, items in lists.items():
        marker = json.dumps(placeholder(name))
        at = text.index(marker, start)
        line_start = text.rfind("\n", 0, at) + 1
        indent = " " * (len(text[line_start:at]) - len(text[line_start:at].lstrip(" ")))
        out.write(text[start:at])
        write_list(out, items(), indent)
        start = at + len(marker)
    out.write(text[start:] + "\n")


def write_list(out: IO[str], items: Iterable[Any], indent: str) -> None:
    """A list whose opening bracket is on a line indented by ``indent``, as the encoder writes it there."""
    inner = "\n" + indent + "  "
    empty = True
    for item in items:
        out.write(("[" if empty else ",") + inner + dumps(item, indent + "  "))
        empty = False
    out.write("[]" if empty else "\n" + indent + "]")


class _Unusual(Exception):
    """A value ``_dump`` leaves to the json module: a key that is not a string, a float, another type."""


def dumps(value: Any, indent: str = "") -> str:
    """``json.dumps(value, indent=2)`` for a value starting on a line indented by ``indent`` (each line
    break followed by ``indent`` too). The json module writes an indented dump with its pure-Python
    encoder; the values of a report (strings, whole numbers, booleans, null, lists and string-keyed
    mappings) are written here twice as fast, every other value by the json module."""
    try:
        return _dump(value, indent)
    except _Unusual:
        return json.dumps(value, indent=2).replace("\n", "\n" + indent)


def _dump(value: Any, indent: str) -> str:
    # The json module's order of tests: a bool is an int, and a str subclass is written as a str.
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = indent + "  "
        return "[\n" + inner + (",\n" + inner).join([_dump(v, inner) for v in value]) + "\n" + indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        parts: list[str] = []
        append = parts.append
        for key, v in value.items():
            if not isinstance(key, str):
                raise _Unusual
            # A plain str or int value (most of a report's) written here: a call per field is most of
            # a report's writing. Anything else, a subclass included, by the full order of tests.
            kind = type(v)
            if kind is str:
                text = encode_basestring_ascii(v)
            elif kind is int:
                text = int.__repr__(v)
            else:
                text = _dump(v, inner)
            append(encode_basestring_ascii(key) + ": " + text)
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "}"
    raise _Unusual
