"""Binary operators as closures: the generic operator of each kind, and the fast paths for the shapes
policies use most (an int comparison, equality with a string literal, membership in a list of string
literals, a concatenation charged by its size before it is built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policyengine.cel.budget import concat_cost
from policyengine.cel.fast import ops

Ctx = list[Any]
Fn = Callable[[Ctx], Any]

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "relation_lt": ops.lt, "relation_le": ops.le, "relation_gt": ops.gt, "relation_ge": ops.ge,
    "relation_eq": ops.eq, "relation_in": ops.in_, "addition_add": ops.add, "addition_sub": ops.sub,
    "multiplication_mul": ops.mul, "multiplication_div": ops.div, "multiplication_mod": ops.mod,
}  # fmt: skip

_INT_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "relation_lt": int.__lt__, "relation_le": int.__le__, "relation_gt": int.__gt__,
    "relation_ge": int.__ge__, "relation_eq": int.__eq__,
}  # fmt: skip


def concatenation(left: Fn, right: Fn) -> Fn:
    """``+``, charging a string or list concatenation by its size before building it."""

    def add(ctx: Ctx) -> Any:
        a, b = left(ctx), right(ctx)
        if type(a) is int and type(b) is int:
            return ops.add(a, b)
        cost = concat_cost(a, b)
        if cost:
            ctx[1].charge(cost)
        return ops.add(a, b)

    return add


def int_fast_path(kind: str, left: Fn, right: Fn) -> Fn | None:
    """A comparison with both operands CEL ints (``object.spec.replicas <= 50``) without the generic
    operator's dispatch; anything else takes the generic path."""
    compare = _INT_COMPARISONS.get(kind)
    generic = BINARY[kind]
    if compare is None:
        return None

    def compare_ints(ctx: Ctx) -> Any:
        a, b = left(ctx), right(ctx)
        if type(a) is int and type(b) is int:
            return compare(a, b)
        return generic(a, b)

    return compare_ints


def equals_text(left: Fn, text: str) -> Fn:
    def equals(ctx: Ctx) -> bool:
        value = left(ctx)
        return type(value) is str and value == text

    return equals


def in_texts(left: Fn, texts: list[str]) -> Fn:
    members = frozenset(texts)

    def contained(ctx: Ctx) -> bool:
        value = left(ctx)
        if type(value) is str:
            return value in members
        return ops.in_(value, texts)

    return contained


def all_strings(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)
