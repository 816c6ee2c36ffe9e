"""The result-type check: an expression whose shape alone says it cannot yield what its field needs.

cel-python has no type checker, and the request's fields have no declared types, so most expressions
yield ``dyn`` and are checked at evaluation. What is certain from the shape is checked here, as
Kubernetes' compiler does with ``must evaluate to bool``: a validation that is a literal (``'true'``,
``1``), arithmetic or a list; a messageExpression that is a comparison, a number or a bool. A ternary
yields what either branch does; ``a + b`` yields what both operands' types allow.
"""

from __future__ import annotations

from typing import Any

import lark

from policyengine.cel.port import CelCompileError, Returns
from policyengine.cel.syntax import call_args, is_macro_call, literal_token, simple_ident, unwrap
from policyengine.errors import CEL_TYPE

Kinds = frozenset[str]

_LITERALS = {
    "INT_LIT": "int", "UINT_LIT": "uint", "FLOAT_LIT": "double", "STRING_LIT": "string",
    "MLSTRING_LIT": "string", "BYTES_LIT": "bytes", "BOOL_LIT": "bool", "NULL_LIT": "null_type",
}  # fmt: skip
_BOOL: Kinds = frozenset({"bool"})
_NUMBERS = frozenset({"int", "uint", "double"})
_ADDABLE = _NUMBERS | {"string", "bytes", "list", "duration", "timestamp"}
_ARITHMETIC: dict[str, Kinds] = {
    "addition_sub": _NUMBERS | {"duration", "timestamp"},
    "multiplication_mul": _NUMBERS,
    "multiplication_div": _NUMBERS,
    "multiplication_mod": _NUMBERS,
}
# Functions whose every overload yields one kind (or an error).
_FUNCTIONS: dict[str, Kinds] = {
    name: frozenset({name}) for name in ("int", "uint", "double", "string", "bytes", "bool")
} | {"size": frozenset({"int"}), "has": _BOOL, "duration": frozenset({"duration"}),
     "timestamp": frozenset({"timestamp"})}  # fmt: skip
_MACROS: dict[str, Kinds] = {
    "all": _BOOL, "exists": _BOOL, "exists_one": _BOOL, "existsOne": _BOOL,
    "map": frozenset({"list"}), "filter": frozenset({"list"}), "sortBy": frozenset({"list"}),
    "transformList": frozenset({"list"}), "transformMap": frozenset({"map"}),
    "optMap": frozenset({"optional_type"}), "optFlatMap": frozenset({"optional_type"}),
}  # fmt: skip
_OPTIONAL: Kinds = frozenset({"optional_type"})
# Methods and ``optional.*`` functions of the optional library whose result kind is fixed.
_OPTIONAL_CALLS: dict[str, Kinds] = {
    "optional.of": _OPTIONAL, "optional.none": _OPTIONAL, "optional.ofNonZeroValue": _OPTIONAL,
    "hasValue": _BOOL, "or": _OPTIONAL,
}  # fmt: skip


def check_result(tree: Any, returns: Returns) -> None:
    """Raise CelCompileError (``cel_type``) when ``tree`` cannot yield any of ``returns``."""
    if not returns:
        return
    found = kinds(tree)
    if found is None or found & set(returns):
        return
    want = returns[0] if len(returns) == 1 else f"one of {', '.join(returns)}"
    raise CelCompileError(
        f"must evaluate to {want}, but this expression yields {' or '.join(sorted(found))}", CEL_TYPE
    )


def kinds(tree: Any) -> Kinds | None:
    """The kinds of value ``tree`` may yield, or None when only evaluation can tell (``dyn``)."""
    node = unwrap(tree)
    if not isinstance(node, lark.Tree):
        return None
    data, children = node.data, node.children
    if data == "literal":
        token = literal_token(node)
        kind = _LITERALS.get(token.type) if token is not None else None
        return frozenset({kind}) if kind is not None else None
    if data in ("list_lit", "map_lit"):
        return frozenset({data.removesuffix("_lit")})
    if data == "paren_expr":
        return kinds(children[0])
    if data == "expr" and len(children) == 3:
        left, right = kinds(children[1]), kinds(children[2])
        return None if left is None or right is None else left | right
    if data in ("conditionalor", "conditionaland", "relation") and len(children) == 2:
        return _BOOL
    if data == "unary":
        return _BOOL if children[0].data == "unary_not" else frozenset({"int", "double", "duration"})
    if data in ("addition", "multiplication") and len(children) == 2:
        operator = children[0]
        if operator.data == "addition_add":
            return _sum(kinds(operator.children[0]), kinds(children[1]))
        return _ARITHMETIC[operator.data]
    if data == "ident_arg":
        return _FUNCTIONS.get(str(children[0]))
    if data in ("member_dot_opt", "member_index_opt"):
        return _OPTIONAL
    if data == "member_dot_arg":
        return _member_call(node)
    return None


def _member_call(node: Any) -> Kinds | None:
    """``x.name(args)``: a macro, an optional method, or an ``optional.*`` function."""
    name, args = str(node.children[1]), call_args(node, 2)
    if is_macro_call(name, args):
        return _MACROS.get(name)
    if simple_ident(node.children[0]) == "optional":
        return _OPTIONAL_CALLS.get(f"optional.{name}")
    if name in ("hasValue", "or"):
        return _OPTIONAL_CALLS[name]
    return None


def _sum(left: Kinds | None, right: Kinds | None) -> Kinds | None:
    """What ``+`` yields: both operands of one type, or a timestamp and a duration."""
    left, right = left or _ADDABLE, right or _ADDABLE
    out = set(left & right & (_ADDABLE - {"timestamp"}))
    if ("timestamp" in left and "duration" in right) or ("duration" in left and "timestamp" in right):
        out.add("timestamp")
    return frozenset(out) or None  # no overload at all: evaluation reports it
