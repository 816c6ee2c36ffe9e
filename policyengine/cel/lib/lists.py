"""The Kubernetes lists library and cel-go's ``ext.Lists`` (version 3), as Kubernetes enables them.

Kubernetes: ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``, ``includes``. cel-go:
``lists.range``, ``reverse``, ``slice``, ``flatten``, ``sort``, ``distinct`` (``sortBy`` is a macro and
lives in the evaluator). Equality is CEL's (deep, numeric across types); ordering is CEL's ``<``.
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Any

from celpy import celtypes

from policyengine.cel.budget import ELEMENT_COST_DIVISOR, charge_elements
from policyengine.cel.lib.dispatch import ANY, INT, LIST, Function, LibError, overload, table
from policyengine.cel.lib.numeric import cel_equals, compare, is_number

_ORDERED = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType, celtypes.BoolType, celtypes.StringType,
            celtypes.BytesType, celtypes.TimestampType, celtypes.DurationType)  # fmt: skip


def _check_comparable(items: list[Any], name: str) -> None:
    for item in items:
        if not isinstance(item, _ORDERED):
            raise LibError(
                f"found no matching overload for '{name}' applied to a list of {type(item).__name__}"
            )


@overload(LIST)
def _sum(items: list[Any]) -> Any:
    if not items:
        return celtypes.IntType(0)
    if not (all(is_number(i) for i in items) or all(isinstance(i, celtypes.DurationType) for i in items)):
        raise LibError("found no matching overload for 'sum' applied to this list")
    kinds = {type(i) for i in items}
    if len(kinds) > 1:
        raise LibError("found no matching overload for 'sum' applied to a mixed list")
    return kinds.pop()(functools.reduce(operator.add, items))


def _extreme(name: str, sign: int) -> Function:
    @overload(LIST)
    def extreme(items: list[Any]) -> Any:
        if not items:
            raise LibError(f"{name} called on empty list")
        _check_comparable(items, name)
        best = items[0]
        for item in items[1:]:
            if compare(item, best) == sign:
                best = item
        return best

    return extreme


@overload(LIST)
def _is_sorted(items: list[Any]) -> celtypes.BoolType:
    _check_comparable(items, "isSorted")
    return celtypes.BoolType(all(compare(a, b) <= 0 for a, b in itertools.pairwise(items)))


@overload(LIST, ANY)
def _index_of(items: list[Any], value: Any) -> celtypes.IntType:
    for index, item in enumerate(items):
        if cel_equals(item, value):
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


@overload(LIST, ANY)
def _last_index_of(items: list[Any], value: Any) -> celtypes.IntType:
    for index in range(len(items) - 1, -1, -1):
        if cel_equals(items[index], value):
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


@overload(LIST, ANY)
def _includes(items: list[Any], value: Any) -> celtypes.BoolType:
    return celtypes.BoolType(any(cel_equals(item, value) for item in items))


@overload(INT)
def _range(count: int) -> celtypes.ListType:
    charge_elements(max(int(count), 0) * ELEMENT_COST_DIVISOR)  # one unit per element
    # int.__new__ skips IntType's range check, which costs ~10 µs per element; range() is in int64.
    return celtypes.ListType(int.__new__(celtypes.IntType, i) for i in range(int(count)))


@overload(LIST)
def _reverse(items: list[Any]) -> celtypes.ListType:
    return celtypes.ListType(reversed(items))


@overload(LIST, INT, INT)
def _slice(items: list[Any], start: int, end: int) -> celtypes.ListType:
    if start < 0 or end < 0:
        raise LibError(f"cannot slice({start}, {end}), negative indexes not supported")
    if start > end:
        raise LibError(f"cannot slice({start}, {end}), start index must be less than or equal to end index")
    if end > len(items):
        raise LibError(f"cannot slice({start}, {end}), list is length {len(items)}")
    return celtypes.ListType(items[start:end])


def _flat_size(items: list[Any], depth: int) -> int:
    """How many elements flattening ``items`` to ``depth`` yields, counted before building them."""
    return sum(_flat_size(item, depth - 1) if isinstance(item, list) and depth > 0 else 1 for item in items)


def _flatten_into(out: list[Any], items: list[Any], depth: int) -> None:
    for item in items:
        if isinstance(item, list) and depth > 0:
            _flatten_into(out, item, depth - 1)
        else:
            out.append(item)


@overload(LIST)
def _flatten(items: list[Any]) -> celtypes.ListType:
    return _flatten_depth(items, celtypes.IntType(1))


@overload(LIST, INT)
def _flatten_depth(items: list[Any], depth: int) -> celtypes.ListType:
    if depth < 0:
        raise LibError("level must be non-negative")
    depth = min(int(depth), 64)
    charge_elements(_flat_size(items, depth))
    out: list[Any] = []
    _flatten_into(out, items, depth)
    return celtypes.ListType(out)


def sort_by_keys(items: list[Any], keys: list[Any]) -> celtypes.ListType:
    """``items`` ordered by ``keys`` (stable); the keys must be of one comparable type."""
    _check_comparable(keys, "sort")
    if len({type(k) for k in keys if not is_number(k)}) > 1:
        raise LibError("sort: list elements must have the same type")

    def by_key(a: int, b: int) -> int:
        return compare(keys[a], keys[b])

    order = sorted(range(len(items)), key=functools.cmp_to_key(by_key))
    return celtypes.ListType(items[i] for i in order)


@overload(LIST)
def _sort(items: list[Any]) -> celtypes.ListType:
    return sort_by_keys(items, items)


@overload(LIST)
def _distinct(items: list[Any]) -> celtypes.ListType:
    charge_elements(len(items) * len(items) // 8)
    out: list[Any] = []
    for item in items:
        if not any(cel_equals(item, seen) for seen in out):
            out.append(item)
    return celtypes.ListType(out)


def functions() -> dict[str, list[Function]]:
    return table(
        ("sum", _sum),
        ("min", _extreme("min", -1)),
        ("max", _extreme("max", 1)),
        ("isSorted", _is_sorted),
        ("indexOf", _index_of),
        ("lastIndexOf", _last_index_of),
        ("includes", _includes),
        ("lists.range", _range),
        ("reverse", _reverse),
        ("slice", _slice),
        ("flatten", _flatten),
        ("flatten", _flatten_depth),
        ("sort", _sort),
        ("distinct", _distinct),
    )
