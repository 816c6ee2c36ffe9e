"""Which expressions can never charge their meter, so the fast backend evaluates them without arming one.

A meter acts only when something charges it: a comprehension's iterations, a concatenation, a library
call, a lazy variable computed on demand. An expression made only of field selections, ``has()``,
literals, comparisons, ``in``, the logical operators and ``?:`` charges nothing whatever its input, so
arming a meter for it (its deadline read from the clock) changes nothing but the time spent. Everything
else -- any call, macro, ``+``, index, ``variables``, optional syntax -- keeps its meter: the allowed
shapes are listed, never the excluded ones, so a shape added to the grammar later is metered.
"""

from __future__ import annotations

from typing import Any

import lark

from policyengine.cel.syntax import call_args, unwrap

# Nodes whose evaluation charges nothing (their operands are checked in turn).
_UNCHARGED = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "relation_lt", "relation_le", "relation_ge",
     "relation_gt", "relation_eq", "relation_ne", "relation_in", "addition", "multiplication", "unary",
     "unary_not", "unary_neg", "member", "member_dot", "primary", "paren_expr", "literal", "list_lit",
     "exprlist", "ident"}
)  # fmt: skip
# Wrappers that are free only with their single child (with two, they hold an operator that may charge).
_WRAPPERS = frozenset({"addition", "multiplication"})
_MAX_NODES = 2000  # a larger expression is simply metered


def never_charges(tree: Any) -> bool:
    """True when evaluating ``tree`` cannot charge a meter, on any input."""
    seen = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, lark.Tree):
            continue  # a token: a name or a literal's text
        seen += 1
        if seen > _MAX_NODES or not _free(node):
            return False
        stack.extend(node.children)
    return True


def _free(node: lark.Tree[Any]) -> bool:
    kind = node.data
    if kind == "ident_arg":  # has(a.b): a map lookup; any other call may charge
        args = call_args(node, 1)
        target = unwrap(args[0]) if len(args) == 1 else None
        return (
            str(node.children[0]) == "has" and isinstance(target, lark.Tree) and target.data == "member_dot"
        )
    if kind not in _UNCHARGED:
        return False
    if kind == "ident":  # the lazy ``variables`` are computed, and charged, on first use
        return str(node.children[0]) != "variables"
    if kind in _WRAPPERS:
        return len(node.children) == 1
    return True
