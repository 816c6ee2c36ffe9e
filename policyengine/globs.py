"""Gitignore-style path patterns for ``--exclude``: which paths under a walk root to leave out.

The rules are gitignore's, less negation: a pattern with no slash but a trailing one matches a name at
any depth; one with a slash elsewhere is anchored at the walk root (a leading slash only anchors); a
trailing slash matches directories only; ``*`` and ``?`` never cross a slash, ``**`` spans any number
of directories, ``[abc]`` is a class. A directory that matches is not entered, so nothing under it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_PATTERN = 1000  # a pattern is a flag's value; bound it so its regex stays small


class PatternError(ValueError):
    """A pattern that cannot be used; the message says why."""


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    dir_only: bool


def _segment(text: str) -> str:
    """One path segment's glob as a regex that never matches a slash."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(text[i]))
        elif ch == "[" and (end := text.find("]", i + 2)) > 0:
            inner = text[i + 1 : end]
            negate = inner[:1] in "!^"
            body = inner[1:] if negate else inner
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("/", "") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def compile_pattern(pattern: str) -> _Pattern:
    if not pattern.strip() or len(pattern) > MAX_PATTERN:
        raise PatternError(f"{pattern[:40]!r} is not a path pattern (empty or over {MAX_PATTERN} characters)")
    if pattern.startswith("!"):
        raise PatternError(f"{pattern!r}: negated patterns (!) are not supported")
    dir_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    anchored = "/" in body
    body = body.lstrip("/")
    if body.startswith("./"):
        body = body[2:]
    segments = body.split("/") if anchored else ["**", body]
    parts: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            parts.append(".*" if last else "(?:[^/]*/)*")
        elif seg:
            parts.append(_segment(seg) + ("" if last else "/"))
    try:
        return _Pattern(re.compile("".join(parts)), dir_only)
    except re.error as err:
        raise PatternError(f"{pattern!r} is not a valid pattern: {err}") from None


@dataclass(frozen=True)
class Excludes:
    """Compiled ``--exclude`` patterns; ``matches`` takes a path relative to the walk root."""

    patterns: tuple[_Pattern, ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Excludes:
        return cls(tuple(compile_pattern(p) for p in patterns))

    def matches(self, relative: str, *, is_dir: bool) -> bool:
        path = relative.replace("\\", "/")
        return any(p.regex.fullmatch(path) is not None for p in self.patterns if is_dir or not p.dir_only)
