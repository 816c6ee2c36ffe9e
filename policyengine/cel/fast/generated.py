"""What the functions ``codegen`` generates call: the closures' own error paths and helpers, by the
names the generated source uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policyengine.cel.budget import concat_cost
from policyengine.cel.fast import ops
from policyengine.cel.fast.members import DOTTED_MARK, has_other, select_other
from policyengine.cel.fast.values import CelError, no_overload

Ctx = list[Any]
Fn = Callable[[Ctx], Any]


def _missing(field: str) -> Any:
    raise CelError(f"no such member in mapping: {field!r}")


def _select(value: Any, field: str, ctx: Ctx) -> Any:
    if type(value) is dict:
        _missing(field)
    return select_other(value, field, ctx)


def _undeclared(name: str) -> Any:
    raise CelError(f"undeclared reference to '{name}'")


def _raise(error: CelError) -> Any:
    raise error


def _non_collection(name: str) -> CelError:
    return CelError(f"no such overload: {name} on a non-collection")


def _add(a: Any, b: Any, ctx: Ctx) -> Any:
    """``+`` as ``binary.concatenation`` runs it: a string or list concatenation is charged by its size
    before it is built."""
    if type(a) is not int or type(b) is not int:
        cost = concat_cost(a, b)
        if cost:
            ctx[1].charge(cost)
    return ops.add(a, b)


# What a speculated field path's local holds when the lookup it stands for could not be done there (not
# an exact dict, or no such key): the use runs the path's own code instead. Never a CEL value.
MISS: Any = object()

GLOBALS: dict[str, Any] = {
    "_MISS": MISS,
    "_CelError": CelError,
    "_no_overload": no_overload,
    "_select": _select,
    "_has_other": has_other,
    "_undeclared": _undeclared,
    "_raise": _raise,
    "_non_collection": _non_collection,
    "_not_bool": lambda: CelError("no such overload: a macro predicate must be a bool"),
    "_DOTTED": DOTTED_MARK,
    "_COLLECTIONS": (list, dict, tuple),
    "_SIZED": (str, list, dict, bytes, tuple),
    "_eq": ops.eq,
    "_in": ops.in_,
    "_add": _add,
}
