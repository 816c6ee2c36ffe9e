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
from typing import IO, Any

_MARK = "\x00stream:"  # dumped as "\u0000stream:NAME": no report string is dumped as that


def placeholder(name: str) -> str:
    """The value standing for the list ``name`` until it is written."""
    return _MARK + name


def write(out: IO[str], value: Any, lists: Mapping[str, Callable[[], Iterable[Any]]]) -> None:
    """``json.dumps(value, indent=2) + "\\n"`` with each ``placeholder(name)`` in it replaced by the
    list ``lists[name]()`` makes, each list made only when the text reaches it."""
    text = json.dumps(value, indent=2)
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
        out.write(("[" if empty else ",") + inner + json.dumps(item, indent=2).replace("\n", inner))
        empty = False
    out.write("[]" if empty else "\n" + indent + "]")
