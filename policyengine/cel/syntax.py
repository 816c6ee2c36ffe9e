"""Reading cel-python's parse trees: the few shapes the checkers and both backends need to recognise,
and the macro table (which calls are comprehensions, and which names they bind)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, TypeAlias

import lark

Node: TypeAlias = "lark.Tree[Any]"

# Grammar rules that wrap a single child without changing its meaning.
_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member",
     "primary", "paren_expr"}
)  # fmt: skip


def unwrap(tree: Any) -> Any:
    """The innermost node under a chain of single-child pass-through rules."""
    while isinstance(tree, lark.Tree) and tree.data in _PASS_THROUGH and len(tree.children) == 1:
        tree = tree.children[0]
    return tree


def simple_ident(tree: Any) -> str | None:
    """The name when ``tree`` is just an identifier (``lists`` in ``lists.range(3)``), else None."""
    node = unwrap(tree)
    if isinstance(node, lark.Tree) and node.data == "ident":
        return str(node.children[0])
    return None


MACROS = frozenset(
    {"all", "exists", "exists_one", "existsOne", "map", "filter", "sortBy", "transformList", "transformMap",
     "optMap", "optFlatMap"}
)  # fmt: skip
# Macros with a two-variable form (index or key, value): Kubernetes' TwoVarComprehensions.
TWO_VARIABLE = frozenset({"all", "exists", "exists_one", "existsOne", "transformList", "transformMap"})


def is_macro_call(name: str, args: list[Any]) -> bool:
    """Whether ``target.name(args)`` is a macro: its first argument is a bare variable name."""
    return name in MACROS and 2 <= len(args) <= 4 and simple_ident(args[0]) is not None


def macro_variables(name: str, args: list[Any]) -> list[str]:
    """The names a macro call binds for its remaining arguments: one, or two for the two-variable form
    (``all(i, v, p)``, ``transformMap(k, v, f)``). Call only when ``is_macro_call`` holds."""
    names = [simple_ident(a) for a in args]
    two = name in TWO_VARIABLE and len(args) >= 3 and names[1] is not None
    return [str(n) for n in names[: 2 if two else 1]]


def call_args(tree: Node, first: int) -> list[Any]:
    """The argument expressions of a call node whose optional ``exprlist`` is at ``children[first]``."""
    if len(tree.children) > first and isinstance(tree.children[first], lark.Tree):
        return list(tree.children[first].children)
    return []


def literal_token(tree: Any) -> lark.Token | None:
    """The token when ``tree`` is a plain literal, else None."""
    node = unwrap(tree)
    if isinstance(node, lark.Tree) and node.data == "literal":
        token = node.children[0]
        return token if isinstance(token, lark.Token) else None
    return None


def dotted_name(tree: Any) -> str | None:
    """``a.b.c`` when the member chain is made of identifiers only, else None."""
    parts: list[str] = []
    current: Any = tree
    while True:
        current = unwrap(current)
        if isinstance(current, lark.Tree) and current.data == "member_dot":
            parts.append(str(current.children[1]))
            current = current.children[0]
            continue
        if isinstance(current, lark.Tree) and current.data == "ident":
            parts.append(str(current.children[0]))
            return ".".join(reversed(parts))
        return None


def nodes(tree: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children, without recursion."""
    stack: list[Node] = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in reversed(node.children) if isinstance(child, lark.Tree))


_TRAILING_COMMA = re.compile(r",(\s*[\]}])")
_STRING = re.compile(
    r"""[rR]?[bB]?[rR]?('''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
)


def drop_trailing_commas(source: str) -> str:
    """CEL allows a trailing comma in list and map literals (``{"a": 1,}``); cel-python's grammar does
    not. Remove such commas outside string literals before parsing."""
    if "," not in source:
        return source
    out: list[str] = []
    pos = 0
    for match in _STRING.finditer(source):
        out.append(_TRAILING_COMMA.sub(r"\1", source[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_TRAILING_COMMA.sub(r"\1", source[pos:]))
    return "".join(out)
