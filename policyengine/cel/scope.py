"""The declared-identifier check: every name an expression reads must be bound by its document's kind.

A free identifier (one no enclosing comprehension binds, as ``c`` in ``containers.all(c, ...)``) must be
a declared root (``Declarations.roots``), a type name (``int``, ``net.IP``) or the namespace of a
library function (``lists`` in ``lists.range(3)``). A misspelt root (``objct.spec``) or a view the
document does not get (``workloads.gpus``) is then reported at load with cel-go's words, ``undeclared
reference to 'objct'``, instead of failing every request. Message construction (``Foo{a: 1}``) names a
type this environment does not have: an undeclared reference too, checked with or without declarations.
Only roots are checked: what lies below one (``object.spec``, ``variables.team``) is data.
"""

from __future__ import annotations

import difflib
from typing import Any

import lark

from policyengine.cel.port import CelCompileError, Declarations
from policyengine.cel.syntax import Node, call_args, dotted_name, is_macro_call, macro_variables, simple_ident
from policyengine.errors import UNDECLARED_REFERENCE

Scope = frozenset[str]


def check_declared(
    tree: Node, declared: Declarations | None, known: frozenset[str], types: frozenset[str]
) -> None:
    """Raise CelCompileError (``undeclared_reference``) for the first name nobody binds. ``known`` are
    the callable names (``lists.range``), ``types`` the type identifiers (``int``, ``net.IP``)."""
    stack: list[tuple[Any, Scope]] = [(tree, frozenset())]
    while stack:
        node, scope = stack.pop()
        if not isinstance(node, lark.Tree):
            continue
        data = node.data
        if data == "ident":
            name = str(node.children[0])
            if name not in scope:
                _free(name, declared, types)
        elif data == "dot_ident":  # ``.object``: always the root binding, never a comprehension variable
            _free(str(node.children[0]), declared, types)
        elif data == "member_object":
            raise CelCompileError(_construction(node), UNDECLARED_REFERENCE)
        elif data == "member_dot" and dotted_name(node) in types:
            continue
        elif data == "member_dot_arg":
            stack.extend(_call_parts(node, scope, known))
        else:
            stack.extend((child, scope) for child in node.children)


def _call_parts(node: Node, scope: Scope, known: frozenset[str]) -> list[tuple[Any, Scope]]:
    """The sub-trees of ``target.name(args)`` with the scope each is read in."""
    target, name = node.children[0], str(node.children[1])
    args = call_args(node, 2)
    namespace = simple_ident(target)
    if namespace is not None and namespace not in scope and f"{namespace}.{name}" in known:
        return [(arg, scope) for arg in args]  # ``lists.range(3)``: ``lists`` names a library
    if is_macro_call(name, args):
        bound = macro_variables(name, args)
        inner = scope | frozenset(bound)
        return [(target, scope), *((arg, inner) for arg in args[len(bound) :])]
    return [(target, scope), *((arg, scope) for arg in args)]


def _free(name: str, declared: Declarations | None, types: frozenset[str]) -> None:
    if declared is None or name in declared.roots or name in types:
        return
    roots = sorted(declared.roots)
    near = difflib.get_close_matches(name, roots, n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise CelCompileError(
        f"undeclared reference to '{name}' ({hint}{declared.origin} expressions may read {', '.join(roots)})",
        UNDECLARED_REFERENCE,
    )


def _construction(node: Node) -> str:
    name = dotted_name(node.children[0]) or "a message"
    return f"undeclared reference to '{name}': message construction ({name}{{...}}) is not supported"
