"""The cel-go strings extension (version 2, as Kubernetes configures it), minus ``format`` (its own module).

Indices count Unicode code points, as Python ``str`` does. Where Go and Python differ the Go behaviour
is kept: ``trim`` strips exactly Go's ``unicode.IsSpace`` set, ``split(sep, n)`` is ``strings.SplitN``,
``lowerAscii``/``upperAscii`` change ASCII letters only.
"""

from __future__ import annotations

from typing import Any

from celpy import celtypes

from policyengine.cel.budget import ELEMENT_COST_DIVISOR, charge, charge_elements
from policyengine.cel.lib.dispatch import INT, LIST, STRING, Function, LibError, overload, table

# Go's unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property (not U+180E, U+200B...).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _s(value: str) -> celtypes.StringType:
    return celtypes.StringType(value)


@overload(STRING, INT)
def _char_at(text: str, index: int) -> celtypes.StringType:
    if index < 0 or index > len(text):
        raise LibError(f"index out of range: {index}")
    return _s(text[index : index + 1])


@overload(STRING, STRING)
def _index_of(text: str, sub: str) -> celtypes.IntType:
    return celtypes.IntType(str(text).find(sub))


@overload(STRING, STRING, INT)
def _index_of_from(text: str, sub: str, offset: int) -> celtypes.IntType:
    if offset < 0:
        raise LibError(f"index out of range: {offset}")
    if sub == "":
        return celtypes.IntType(min(offset, len(text)))
    if offset >= len(text):
        return celtypes.IntType(-1)
    return celtypes.IntType(str(text).find(sub, offset))


@overload(STRING, STRING)
def _last_index_of(text: str, sub: str) -> celtypes.IntType:
    return celtypes.IntType(str(text).rfind(sub))


@overload(STRING, STRING, INT)
def _last_index_of_from(text: str, sub: str, offset: int) -> celtypes.IntType:
    if offset < 0:
        raise LibError(f"index out of range: {offset}")
    if sub == "":
        return celtypes.IntType(min(offset, len(text)))
    if offset >= len(text):
        return celtypes.IntType(-1)
    return celtypes.IntType(str(text).rfind(sub, 0, offset + len(sub)))


@overload(STRING)
def _lower_ascii(text: str) -> celtypes.StringType:
    return _s(str(text).translate(_LOWER))


@overload(STRING)
def _upper_ascii(text: str) -> celtypes.StringType:
    return _s(str(text).translate(_UPPER))


@overload(STRING, STRING, STRING)
def _replace(text: str, old: str, new: str) -> celtypes.StringType:
    return _replace_n(text, old, new, celtypes.IntType(-1))


@overload(STRING, STRING, STRING, INT)
def _replace_n(text: str, old: str, new: str, count: int) -> celtypes.StringType:
    if count == 0:
        return _s(text)
    occurrences = len(text) + 1 if old == "" else str(text).count(old)
    if count > 0:
        occurrences = min(occurrences, count)
    # The call paid for the text (its arguments' size); what the replacements add is built beyond it.
    charge(occurrences * max(len(new) - len(old), 0) // ELEMENT_COST_DIVISOR)
    if old == "":
        parts = list(str(text))
        out = []
        for i, ch in enumerate([*parts, ""]):
            out.append((new if i < occurrences else "") + ch)
        return _s("".join(out))
    return _s(str(text).replace(old, new, count if count > 0 else -1))


@overload(STRING, STRING)
def _split(text: str, sep: str) -> celtypes.ListType:
    return _split_n(text, sep, celtypes.IntType(-1))


@overload(STRING, STRING, INT)
def _split_n(text: str, sep: str, count: int) -> celtypes.ListType:
    if count == 0:
        return celtypes.ListType()
    # The call paid for the characters; each part is a new value, charged like a list element built
    # by lists.range (one unit), which bounds s.split('') of a long string to what the budget allows.
    built = len(text) if sep == "" else str(text).count(sep) + 1
    charge(min(built, count) if count > 0 else built)
    if sep == "":
        chars = list(str(text))
        if 0 < count < len(chars):
            chars = [*chars[: count - 1], "".join(chars[count - 1 :])]
        return celtypes.ListType(_s(c) for c in chars)
    parts = str(text).split(sep, count - 1 if count > 0 else -1)
    return celtypes.ListType(_s(p) for p in parts)


@overload(STRING, INT)
def _substring(text: str, start: int) -> celtypes.StringType:
    if start < 0 or start > len(text):
        raise LibError(f"index out of range: {start}")
    return _s(text[start:])


@overload(STRING, INT, INT)
def _substring_range(text: str, start: int, end: int) -> celtypes.StringType:
    if start < 0 or start > len(text):
        raise LibError(f"index out of range: {start}")
    if end < 0 or end > len(text):
        raise LibError(f"index out of range: {end}")
    if start > end:
        raise LibError(f"invalid substring range. start: {start}, end: {end}")
    return _s(text[start:end])


@overload(STRING)
def _trim(text: str) -> celtypes.StringType:
    return _s(str(text).strip(_GO_SPACE))


@overload(LIST)
def _join(items: list[Any]) -> celtypes.StringType:
    return _join_sep(items, celtypes.StringType(""))


@overload(LIST, STRING)
def _join_sep(items: list[Any], sep: str) -> celtypes.StringType:
    if not all(isinstance(item, str) for item in items):
        raise LibError("join: list must contain only strings")
    # Charged from the lengths alone, before anything is copied; str.join takes the items as they are.
    charge_elements(sum(map(len, items)) + len(sep) * len(items))
    return _s(str(sep).join(items))


_QUOTE_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip


@overload(STRING)
def _quote(text: str) -> celtypes.StringType:
    # Escapes lengthen the text up to ten times (``\U0001f600``): charge what they add before building.
    escapes = sum(map(str(text).count, _QUOTE_ESCAPES))
    extra = escapes if str(text).isprintable() else 9 * len(text)
    charge(extra // ELEMENT_COST_DIVISOR)
    out = []
    for ch in str(text):
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return _s('"' + "".join(out) + '"')


def functions() -> dict[str, list[Function]]:
    return table(
        ("charAt", _char_at),
        ("indexOf", _index_of),
        ("indexOf", _index_of_from),
        ("lastIndexOf", _last_index_of),
        ("lastIndexOf", _last_index_of_from),
        ("lowerAscii", _lower_ascii),
        ("upperAscii", _upper_ascii),
        ("replace", _replace),
        ("replace", _replace_n),
        ("split", _split),
        ("split", _split_n),
        ("substring", _substring),
        ("substring", _substring_range),
        ("trim", _trim),
        ("join", _join),
        ("join", _join_sep),
        ("strings.quote", _quote),
    )
