"""A small PromQL reader for the tests of deploy/monitoring: which metrics and labels an expression (as
Grafana or a PrometheusRule holds it) reads, and inside which functions. Not a parser: it tokenizes,
skips strings, range and subquery brackets and Grafana variables, and tells selectors from function and
aggregation names by what follows them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""\s+
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?:ms|[smhdwy])?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],])""",
    re.VERBOSE,
)
# Words that are never metric names where they stand bare.
# Followed by a parenthesised list of label names (group_left and group_right may stand alone).
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}) | LABEL_LISTS
MAX_EXPRESSION = 10_000  # characters: an expression in a dashboard is a line or two


class PromQLError(ValueError):
    pass


@dataclass
class Reads:
    """What an expression reads: each metric with the functions it sits in (innermost last), and every
    label it names in a matcher or a grouping."""

    metrics: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.metrics}


def tokens(expr: str) -> list[tuple[str, str]]:
    if len(expr) > MAX_EXPRESSION:
        raise PromQLError(f"expression longer than {MAX_EXPRESSION} characters")
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLError(f"unexpected {expr[pos]!r} at {pos} in {expr!r}")
        pos = m.end()
        if m.lastgroup is not None:
            out.append((m.lastgroup, m.group(m.lastgroup)))
    return out


def reads(expr: str) -> Reads:
    found = Reads()
    toks = tokens(expr)
    calls: list[str] = []  # the function (or "" for a plain parenthesis) each open "(" belongs to
    pending = ""  # an aggregation whose grouping came first: its "(" is still to come
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        after = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text == "[":
            i = _skip(toks, i, "[", "]")
            continue
        if text == "{":
            i = _matchers(toks, i, found)
            continue
        if kind == "ident" and text in LABEL_LISTS and after == "(":
            i = _label_list(toks, i + 1, found)
            continue
        if kind == "ident" and after in ("by", "without"):  # sum by (le) (...): an aggregation
            pending = text
            i += 1
            continue
        if kind == "ident" and after == "(":
            calls.append(text)
            i += 2
            continue
        if text == "(":
            calls.append(pending)
            pending = ""
        elif text == ")":
            if not calls:
                raise PromQLError(f"unbalanced ')' in {expr!r}")
            calls.pop()
        elif kind == "ident" and text not in KEYWORDS:
            found.metrics.append((text, tuple(c for c in calls if c)))
        i += 1
    if calls:
        raise PromQLError(f"unbalanced '(' in {expr!r}")
    return found


def _skip(toks: list[tuple[str, str]], i: int, opening: str, closing: str) -> int:
    """The index after the bracket that closes the one at ``i``."""
    for j in range(i + 1, len(toks)):
        if toks[j][1] == closing:
            return j + 1
        if toks[j][1] == opening:
            break
    raise PromQLError(f"unclosed {opening!r}")


def _matchers(toks: list[tuple[str, str]], i: int, found: Reads) -> int:
    """Label matchers ``{name op "value", ...}``: the names are labels."""
    end = _skip(toks, i, "{", "}")
    body = toks[i + 1 : end - 1]
    for j, (kind, text) in enumerate(body):
        if kind == "ident" and j + 1 < len(body) and body[j + 1][1] in ("=", "!=", "=~", "!~"):
            found.labels.add(text)
    return end


def _label_list(toks: list[tuple[str, str]], i: int, found: Reads) -> int:
    end = _skip(toks, i, "(", ")")
    found.labels |= {text for kind, text in toks[i + 1 : end - 1] if kind == "ident"}
    return end


def label_values(query: str) -> tuple[str, str]:
    """Grafana's ``label_values(selector, label)`` variable query: (selector, label)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.DOTALL)
    if m is None:
        raise PromQLError(f"not a label_values(selector, label) query: {query!r}")
    return m.group(1), m.group(2)
