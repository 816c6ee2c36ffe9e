"""A reader for the protobuf text format subset the cel-spec ``SimpleTestFile`` files use.

Messages become dicts whose values are lists (every field may repeat); scalars stay as tokens: quoted
strings as ``bytes`` (text format strings are byte strings), numbers and enum names as ``str``.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?P<punct>[{}<>:\[\],;])"""
    r"""|(?P<word>[-+]?[A-Za-z0-9_.+\-/]+)""",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "\\": 92,
    "'": 39,
    '"': 34,
    "?": 63,
}


def _unescape(body: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1 : j], 8) & 0xFF)
            i = j
        elif nxt in "xX":
            j = i + 2
            while j < len(body) and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(body[i + 2 : j], 16))
            i = j
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + width], 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise ValueError(f"unknown escape \\{nxt}")
    return bytes(out)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read text proto at offset {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        if match.group("str") is not None:
            value = _unescape(match.group("str")[1:-1])
            if out and out[-1][0] == "str":  # adjacent string literals concatenate
                out[-1] = ("str", out[-1][1] + value)
            else:
                out.append(("str", value))
        elif match.group("punct") is not None:
            out.append(("punct", match.group("punct")))
        elif match.group("word") is not None:
            out.append(("word", match.group("word")))
    return out


class _Reader:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def message(self, closer: str | None) -> dict[str, list[Any]]:
        fields: dict[str, list[Any]] = {}
        while True:
            token = self.peek()
            if token is None:
                if closer is not None:
                    raise ValueError("unexpected end of text proto")
                return fields
            if token == ("punct", closer):
                self.take()
                return fields
            if token[0] == "punct" and token[1] in ",;":
                self.take()
                continue
            if token == ("punct", "["):  # extension or Any type URL: [type.googleapis.com/x.Y]
                self.take()
                name = ""
                while self.peek() != ("punct", "]"):
                    name += str(self.take()[1])
                self.take()
            else:
                name = str(self.take()[1])
            if self.peek() == ("punct", ":"):
                self.take()
            fields.setdefault(name, []).extend(self.value())

    def value(self) -> list[Any]:
        kind, token = self.take()
        if kind == "punct" and token in "{<":
            return [self.message("}" if token == "{" else ">")]
        if kind == "punct" and token == "[":
            items: list[Any] = []
            while self.peek() != ("punct", "]"):
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                items.extend(self.value())
            self.take()
            return items
        return [token]


def parse(text: str) -> dict[str, list[Any]]:
    """The top-level message of a text proto document."""
    return _Reader(_tokens(text)).message(None)
