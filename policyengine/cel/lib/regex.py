"""The Kubernetes regex library (``find``, ``findAll``) and core ``matches``, on RE2.

Go's ``regexp`` is RE2, so patterns run on google-re2 (a cel-python dependency) rather than Python's
``re``: the syntax accepted, ``$``, ``\\d``/``\\w`` and the linear-time guarantee all match Kubernetes.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from celpy import celtypes

from policyengine.cel.budget import charge
from policyengine.cel.lib.dispatch import INT, STRING, Function, LibError, overload, table


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 otherwise writes every rejected pattern to stderr
    return options


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern; raises LibError with RE2's reason."""
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        # RE2 quotes the offending fragment of the pattern, which may come from the request.
        raise LibError(f"error parsing regexp: {str(reason).split(':')[0]}") from None


def find_all(pattern: str, text: str, limit: int = -1) -> list[str]:
    """Go's ``FindAllString``: an empty match right after the previous match is skipped."""
    # One pass of finditer, which encodes the text once and steps past an empty match by one character
    # as Go does; a search per match from an offset re-encodes the whole text each time (quadratic).
    out: list[str] = []
    prev_end = -1
    for match in compile_pattern(pattern).finditer(text):
        if limit >= 0 and len(out) >= limit:
            break
        start, end = match.span()
        if start == end == prev_end:
            continue
        charge(1)  # a new value, charged like a list element (the call paid for the text)
        out.append(match.group(0))
        prev_end = end
    return out


@overload(STRING, STRING)
def _matches(text: str, pattern: str) -> celtypes.BoolType:
    return celtypes.BoolType(compile_pattern(str(pattern)).search(str(text)) is not None)


@overload(STRING, STRING)
def _find(text: str, pattern: str) -> celtypes.StringType:
    match = compile_pattern(str(pattern)).search(str(text))
    return celtypes.StringType(match.group(0) if match is not None else "")


@overload(STRING, STRING)
def _find_all(text: str, pattern: str) -> celtypes.ListType:
    return _find_all_n(text, pattern, celtypes.IntType(-1))


@overload(STRING, STRING, INT)
def _find_all_n(text: str, pattern: str, limit: int) -> celtypes.ListType:
    if limit == 0:
        return celtypes.ListType()
    return celtypes.ListType(celtypes.StringType(s) for s in find_all(str(pattern), str(text), int(limit)))


def functions() -> dict[str, list[Function]]:
    return table(
        ("matches", _matches),
        ("find", _find),
        ("findAll", _find_all),
        ("findAll", _find_all_n),
    )
