"""The comprehension macros as closures: ``all``, ``exists``, ``exists_one``, ``map`` (2 and 3 arguments),
``filter``, the two-variable forms (``all(i, v, p)``, ``transformList``, ``transformMap``), ``sortBy``
and ``optMap``/``optFlatMap``.

Iteration variables live in numbered slots of the evaluation context (``ctx[slot]``), assigned at compile
time, so an iteration is a list store, not a new scope. Each iteration adds the body's size to the
meter inline. Error rules follow CEL: ``all`` is false if any predicate is false even when others
fail, ``exists`` true if any is true; the other macros propagate the first error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policyengine.cel.fast.values import CelError, from_ref, to_ref
from policyengine.cel.lib.dispatch import LibError
from policyengine.cel.lib.lists import sort_by_keys
from policyengine.cel.lib.optional import Optional

Ctx = list[Any]
Fn = Callable[[Ctx], Any]


def _items(target: Any, name: str) -> Any:
    kind = type(target)
    if kind is list or kind is dict or kind is tuple:
        return target
    raise CelError(f"no such overload: {name} on a non-collection")


def _pairs(target: Any) -> list[tuple[Any, Any]]:
    if type(target) is dict:
        return list(target.items())
    return list(enumerate(target))


def _not_bool() -> CelError:
    return CelError("no such overload: a macro predicate must be a bool")


def quantifier(target: Fn, slots: tuple[int, ...], body: Fn, cost: int, universal: bool) -> Fn:
    name = "all" if universal else "exists"
    first = slots[0]
    decided: bool = not universal

    def one_variable(ctx: Ctx) -> bool:
        items = _items(target(ctx), name)
        meter = ctx[1]
        error: CelError | None = None
        for item in items:
            meter.cost += cost
            if meter.cost >= meter.checkpoint:
                meter.charge(0)
            ctx[first] = item
            try:
                result = body(ctx)
            except CelError as err:
                error = error or err
                continue
            if result is decided:
                return not universal
            if result is not universal:
                error = error or _not_bool()
        if error is not None:
            raise error
        return universal

    if len(slots) == 1:
        return one_variable
    second = slots[1]

    def two_variables(ctx: Ctx) -> bool:
        pairs = _pairs(_items(target(ctx), name))
        meter = ctx[1]
        error: CelError | None = None
        for a, b in pairs:
            meter.charge(cost)
            ctx[first] = a
            ctx[second] = b
            try:
                result = body(ctx)
            except CelError as err:
                error = error or err
                continue
            if result is decided:
                return not universal
            if result is not universal:
                error = error or _not_bool()
        if error is not None:
            raise error
        return universal

    return two_variables


def _scopes(target: Any, name: str, slots: tuple[int, ...]) -> list[tuple[Any, ...]]:
    items = _items(target, name)
    if len(slots) == 2:
        return _pairs(items)
    return [(item,) for item in items]


def _bind(ctx: Ctx, slots: tuple[int, ...], scope: tuple[Any, ...]) -> None:
    for slot, value in zip(slots, scope, strict=True):
        ctx[slot] = value


def _keep(ctx: Ctx, predicate: Fn) -> bool:
    keep = predicate(ctx)
    if keep is True or keep is False:
        return keep
    raise _not_bool()


def exists_one(target: Fn, slots: tuple[int, ...], body: Fn, cost: int, name: str) -> Fn:
    def run(ctx: Ctx) -> bool:
        count = 0
        for scope in _scopes(target(ctx), name, slots):
            ctx[1].charge(cost)
            _bind(ctx, slots, scope)
            count += _keep(ctx, body)
        return count == 1

    return run


def collect(
    target: Fn, slots: tuple[int, ...], predicate: Fn | None, transform: Fn | None, cost: int, name: str
) -> Fn:
    """``filter`` (no transform), ``map``/``transformList`` (with or without a predicate) and
    ``transformMap`` (the result keyed by the first variable)."""
    as_map = name == "transformMap"
    single = len(slots) == 1
    if single:
        return _collect_one(target, slots[0], predicate, transform, cost, name, as_map)

    def run(ctx: Ctx) -> Any:
        target_value = target(ctx)
        out: list[Any] = []
        keys: list[Any] = []
        meter = ctx[1]
        for scope in _scopes(target_value, name, slots):
            meter.charge(cost)
            _bind(ctx, slots, scope)
            if predicate is not None and not _keep(ctx, predicate):
                continue
            if transform is None:
                out.append(scope[0] if single else scope[1])
            else:
                out.append(transform(ctx))
                keys.append(scope[0])
        if as_map:
            return dict(zip(keys, out, strict=True))
        return out

    return run


def _collect_one(
    target: Fn, slot: int, predicate: Fn | None, transform: Fn | None, cost: int, name: str, as_map: bool
) -> Fn:
    """``collect`` with one iteration variable (``filter``, ``map``): the item is stored in its slot as
    it is, without a scope tuple per item (the policies' variables run these on every request)."""

    def run(ctx: Ctx) -> Any:
        items = _items(target(ctx), name)
        out: list[Any] = []
        keys: list[Any] = []
        meter = ctx[1]
        for item in items:
            meter.cost += cost  # meter.charge(cost), inline
            if meter.cost >= meter.checkpoint:
                meter.charge(0)
            ctx[slot] = item
            if predicate is not None and not _keep(ctx, predicate):
                continue
            if transform is None:
                out.append(item)
            else:
                out.append(transform(ctx))
                keys.append(item)
        if as_map:
            return dict(zip(keys, out, strict=True))
        return out

    return run


def sort_by(target: Fn, slots: tuple[int, ...], body: Fn, cost: int) -> Fn:
    key_of = collect(target, slots, None, body, cost, "sortBy")

    def run(ctx: Ctx) -> Any:
        items = target(ctx)
        if type(items) is not list and type(items) is not tuple:
            raise CelError("no such overload: sortBy on a map")
        keys = key_of(ctx)
        try:
            return from_ref(sort_by_keys(to_ref(items), to_ref(keys)))
        except (LibError, TypeError) as err:
            raise CelError(str(err)) from None

    return run


def opt_map(target: Fn, slot: int, body: Fn, flat: bool) -> Fn:
    def run(ctx: Ctx) -> Any:
        value = target(ctx)
        if not isinstance(value, Optional):
            raise CelError("no such overload: optMap needs an optional value")
        if not value.present:
            return value
        ctx[slot] = value.value
        result = body(ctx)
        if flat and type(result) is not Optional:
            raise CelError("no such overload: optFlatMap needs an optional result")
        return result if flat else Optional(True, result)

    return run
