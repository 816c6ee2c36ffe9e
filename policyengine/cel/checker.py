"""Checks made when an expression is compiled, so a bad policy fails at load and never at admission.

cel-python has no type checker. These checks cover what Kubernetes' checker and AST validators reject
that matters most for policy authors: calls to functions the environment does not have (a typo),
literal regular expressions RE2 rejects, malformed duration/timestamp literals, and list or map literals
mixing literal types (``[1, 'a']``, Kubernetes' HomogeneousAggregateLiterals).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import celstr

from policyengine.cel.lib.dispatch import LibError
from policyengine.cel.lib.regex import compile_pattern
from policyengine.cel.lib.string_format import check_literal_format
from policyengine.cel.parser import parse
from policyengine.cel.port import CelCompileError
from policyengine.cel.syntax import (
    Node,
    call_args,
    drop_trailing_commas,
    is_macro_call,
    literal_token,
    nodes,
    simple_ident,
    unwrap,
)

_REGEX_METHODS = frozenset({"matches", "find", "findAll"})
_LITERAL_KINDS = {
    "INT_LIT": "int", "UINT_LIT": "uint", "FLOAT_LIT": "double", "STRING_LIT": "string",
    "MLSTRING_LIT": "string", "BYTES_LIT": "bytes", "BOOL_LIT": "bool",
}  # fmt: skip


def check(tree: Node, known: frozenset[str]) -> None:
    """Raise CelCompileError for the first problem found in ``tree``."""
    exempt: set[int] = set()
    for node in nodes(tree):
        if node.data in ("ident_arg", "dot_ident_arg", "member_dot_arg"):
            _check_no_optional_argument(node)
        if node.data == "ident_arg":
            _check_function(str(node.children[0]), known)
            _check_literal_conversion(str(node.children[0]), call_args(node, 1))
        elif node.data == "dot_ident_arg":
            _check_function(str(node.children[0]), known)
        elif node.data == "member_dot_arg":
            _check_method(node, known)
            if str(node.children[1]) == "format":
                # cel-go accepts heterogeneous lists inside format()'s argument list.
                for arg in call_args(node, 2):
                    exempt.update(id(inner) for inner in nodes(arg))
        elif node.data in ("list_lit", "map_lit") and id(node) not in exempt:
            _check_homogeneous(node)


@functools.lru_cache(maxsize=4096)  # a policy set asks again for each policy sharing the expression
def variables_read(source: str) -> frozenset[str]:
    """The names an expression reads as ``variables.<name>`` (or ``variables['<name>']``); empty when it
    does not parse, which the compile step reports."""
    if "variables" not in source:  # the identifier is written out in any read of it: nothing to parse
        return frozenset()
    try:
        tree = parse(drop_trailing_commas(source))
    except (CELParseError, RecursionError):
        return frozenset()
    names: set[str] = set()
    for node in nodes(tree):
        if node.data in ("member_dot", "member_dot_opt") and simple_ident(node.children[0]) == "variables":
            names.add(str(node.children[1]))
        elif (
            node.data in ("member_index", "member_index_opt")
            and simple_ident(node.children[0]) == "variables"
        ):
            token = literal_token(node.children[1])
            if token is not None and token.type in ("STRING_LIT", "MLSTRING_LIT"):
                names.add(_string_value(token))
    return frozenset(names)


def _check_no_optional_argument(node: Node) -> None:
    first = 1 if node.data in ("ident_arg", "dot_ident_arg") else 2
    for arg in call_args(node, first):
        if isinstance(arg, lark.Tree) and arg.data == "opt_entry":
            raise CelCompileError("an optional entry ('?') is allowed only in list and map literals")


def _check_function(name: str, known: frozenset[str]) -> None:
    if name not in known:
        raise CelCompileError(f"undeclared reference to '{name}'")


def _check_method(node: Node, known: frozenset[str]) -> None:
    target, name = node.children[0], str(node.children[1])
    args = call_args(node, 2)
    namespace = simple_ident(target)
    if namespace is not None and f"{namespace}.{name}" in known:
        return
    if is_macro_call(name, args):
        return
    _check_function(name, known)
    if name in _REGEX_METHODS and args:
        pattern = literal_token(args[0])
        if pattern is not None and pattern.type in ("STRING_LIT", "MLSTRING_LIT"):
            _check_regex(_string_value(pattern))
    if name == "format" and len(args) == 1:
        fmt = literal_token(target)
        if fmt is not None and fmt.type in ("STRING_LIT", "MLSTRING_LIT"):
            _check_format(_string_value(fmt))


def _string_value(token: lark.Token) -> str:
    return str(celstr(token))


def _check_regex(pattern: str) -> None:
    try:
        compile_pattern(pattern)
    except LibError as err:
        raise CelCompileError(f"invalid regular expression: {err}") from None


def _check_format(fmt: str) -> None:
    try:
        check_literal_format(fmt)
    except LibError as err:
        raise CelCompileError(str(err)) from None


def _check_literal_conversion(name: str, args: list[Any]) -> None:
    if name not in ("duration", "timestamp") or len(args) != 1:
        return
    token = literal_token(args[0])
    if token is None or token.type not in ("STRING_LIT", "MLSTRING_LIT"):
        return
    try:
        if name == "duration":
            celtypes.DurationType(_string_value(token))
        else:
            celtypes.TimestampType(_string_value(token))
    except (ValueError, TypeError, OverflowError) as err:
        raise CelCompileError(f"invalid {name} literal: {err}") from None


def _kind(expr: Any) -> str | None:
    token = literal_token(expr)
    if token is not None:
        return _LITERAL_KINDS.get(token.type)
    node = unwrap(expr)
    if isinstance(node, lark.Tree) and node.data in ("list_lit", "map_lit"):
        return "list" if node.data == "list_lit" else "map"
    return None


def _check_homogeneous(node: Node) -> None:
    if not node.children:
        return
    items = node.children[0].children
    groups: Iterable[list[Any]]
    if node.data == "list_lit":
        groups = [items]
    else:
        groups = [items[0::2], items[1::2]]
    for group in groups:
        kinds = {kind for kind in map(_kind, group) if kind is not None}
        if len(kinds) > 1:
            found = sorted(kinds)
            raise CelCompileError(f"expected type '{found[0]}' but found '{found[1]}' in a literal")
