"""Fields a request's bindings may hold unfilled until an expression that may read them runs.

Some view fields cost more to build than every other field together on a large workload (the data
locations of a long env, with their regions) and are read by few policies (the residency pack's, once a
zone is set). A view provider that knows its backend reads bindings as they are (``CelBackend.defers``)
leaves each ``DEFERRABLE`` field's value None, its key in place, and binds ``DEFER_MARK`` to a callable
that fills them all. An expression whose tree may read one of them (``reads_deferred``, decided at
compile time) calls it before it runs, and so does a lazy variable's expression when it is computed, so
no expression ever sees an unfilled field; every other expression runs without them.

``reads_deferred`` over-approximates: a root named whole (``org``, ``.workload``, ``workload[k]``,
``workload.?dataLocations``) or a selection that is a prefix of a deferrable path (``org.residency``)
may read it; only a selection chain that leaves every deferrable path (``org.residency.zone``,
``workload.gpus.total``) does not. Names bound by a comprehension are treated as the roots they shadow.
"""

from __future__ import annotations

from typing import Any

import lark

from policyengine.cel.syntax import unwrap

DEFERRABLE: tuple[tuple[str, ...], ...] = (
    ("workload", "dataLocations"),
    ("org", "residency", "dataLocations"),
)
# Not a CEL identifier, so no expression can name it: the binding holding the request's filler.
DEFER_MARK = "\x00deferred"
_ROOTS = frozenset(path[0] for path in DEFERRABLE)
_NAMES = frozenset({"member_dot", "ident", "dot_ident"})  # the nodes a chain of names starts from
_MAX_NODES = 5000  # a larger tree is taken to read them (the answer stays safe, only slower)


def reads_deferred(tree: Any) -> bool:
    """Whether evaluating ``tree`` may read a ``DEFERRABLE`` field."""
    seen = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, lark.Tree):
            continue  # a token: a name or a literal's text
        seen += 1
        if seen > _MAX_NODES:
            return True
        if node.data in _NAMES:  # (a wrapper is passed through: the chain is met at its inner node)
            chain = _chain(node)
            if chain is not None:
                if chain[0] in _ROOTS and _overlaps(chain):
                    return True
                continue  # a chain of names holds nothing else to read
        stack.extend(node.children)
    return False


def _chain(node: Any) -> tuple[str, ...] | None:
    """``(root, field, ...)`` when ``node`` is a root name with field selections on it (``a.b.c``,
    ``.a.b``), else None."""
    parts: list[str] = []
    current = node
    while True:
        current = unwrap(current)
        if not isinstance(current, lark.Tree):
            return None
        if current.data == "member_dot":
            parts.append(str(current.children[1]))
            current = current.children[0]
            continue
        if current.data in ("ident", "dot_ident"):
            parts.append(str(current.children[0]))
            return tuple(reversed(parts))
        return None


def _overlaps(chain: tuple[str, ...]) -> bool:
    """Whether the value ``chain`` selects holds, or lies inside, a deferrable field."""
    for path in DEFERRABLE:
        n = min(len(chain), len(path))
        if chain[:n] == path[:n]:
            return True
    return False
