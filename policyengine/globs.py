"""Gitignore-style path patterns for ``--exclude``: which paths under a walk root to leave out.

The rules are gitignore's, less negation: a pattern with no slash but a trailing one matches a name at
any depth; one with a slash elsewhere is anchored at the walk root (a leading slash only anchors); a
trailing slash matches directories only; ``*`` and ``?`` never cross a slash, ``**`` spans any number
of directories, ``[abc]`` is a class. A directory that matches is not entered, so nothing under it is.
Matching is linear in the pattern times the path (no regex backtracking): the paths come from the
repository checked, which whoever opens a pull request controls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_PATTERN = 1000  # a pattern is a flag's value: bounded all the same


class PatternError(ValueError):
    """A pattern that cannot be used; the message says why."""


_Ranges = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Token:
    """One character position of a segment: a literal, ``?`` (any), a class, or ``*`` (star)."""

    kind: str  # "literal" | "any" | "class" | "star"
    text: str = ""
    ranges: _Ranges = ()
    negate: bool = False

    def matches(self, ch: str) -> bool:
        if self.kind == "any":
            return True
        if self.kind == "class":
            return any(lo <= ch <= hi for lo, hi in self.ranges) is not self.negate
        return ch == self.text


STAR = _Token("star")
_Segment = tuple[_Token, ...]
ANY_DIRS: _Segment = (_Token("dirs"),)  # the segment **: any number of directories


@dataclass(frozen=True)
class _Pattern:
    segments: tuple[_Segment, ...]
    dir_only: bool


def _class(text: str, i: int) -> tuple[_Token, int] | None:
    """The class opening at ``text[i]`` ('[') and the index of its ']', or None if it does not close."""
    end = text.find("]", i + 2)
    if end < 0:
        return None
    body = text[i + 1 : end]
    negate = body[:1] in ("!", "^")
    body = body[1:] if negate else body
    ranges: list[tuple[str, str]] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            ranges.append((body[k], body[k + 2]))
            k += 3
        else:
            ranges.append((body[k], body[k]))
            k += 1
    return _Token("class", ranges=tuple(ranges), negate=negate), end


def _segment(text: str) -> _Segment:
    """One path segment's glob as tokens; a run of * is one star (none crosses a slash anyway)."""
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        klass = _class(text, i) if ch == "[" else None
        if ch == "*":
            if not out or out[-1] != STAR:
                out.append(STAR)
        elif ch == "?":
            out.append(_Token("any"))
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(_Token("literal", text[i]))
        elif klass is not None:
            out.append(klass[0])
            i = klass[1]
        else:
            out.append(_Token("literal", ch))
        i += 1
    return tuple(out)


def _match_segment(tokens: _Segment, name: str) -> bool:
    """Wildcard match in O(len(tokens) * len(name)): on a mismatch, only the last star takes one more
    character, so no pattern can make it backtrack exponentially."""
    t = n = 0
    star_t, star_n = -1, 0
    while n < len(name):
        if t < len(tokens) and tokens[t] == STAR:
            star_t, star_n = t, n
            t += 1
        elif t < len(tokens) and tokens[t].matches(name[n]):
            t += 1
            n += 1
        elif star_t >= 0:
            t, star_n = star_t + 1, star_n + 1
            n = star_n
        else:
            return False
    while t < len(tokens) and tokens[t] == STAR:
        t += 1
    return t == len(tokens)


def _match_path(segments: tuple[_Segment, ...], parts: list[str]) -> bool:
    """Pattern segments against path segments, ** spanning any number: a set of states, O(P * S)."""

    def close(states: set[int]) -> set[int]:
        out: set[int] = set()
        stack = list(states)
        while stack:
            p = stack.pop()
            if p not in out:
                out.add(p)
                if p < len(segments) and segments[p] == ANY_DIRS:
                    stack.append(p + 1)
        return out

    states = close({0})
    for part in parts:
        following: set[int] = set()
        for p in states:
            if p == len(segments):
                continue
            seg = segments[p]
            if seg == ANY_DIRS:
                following.add(p)
            elif _match_segment(seg, part):
                following.add(p + 1)
        states = close(following)
        if not states:
            return False
    return len(segments) in states


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
    raw = [seg for seg in body.split("/") if seg] if anchored else ["**", body]
    if raw and raw[-1] == "**":  # a trailing ** is everything inside, not the directory itself
        raw[-1:] = ["*", "**"]
    segments = tuple(ANY_DIRS if seg == "**" else _segment(seg) for seg in raw)
    return _Pattern(segments, dir_only)


@dataclass(frozen=True)
class Excludes:
    """Compiled ``--exclude`` patterns; ``matches`` takes a path relative to the walk root."""

    patterns: tuple[_Pattern, ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Excludes:
        return cls(tuple(compile_pattern(p) for p in patterns))

    def matches(self, relative: str, *, is_dir: bool) -> bool:
        parts = [part for part in relative.replace("\\", "/").split("/") if part not in ("", ".")]
        return any(_match_path(p.segments, parts) for p in self.patterns if is_dir or not p.dir_only)
