"""The Kubernetes sets library: ``sets.contains``, ``sets.equivalent``, ``sets.intersects`` on lists."""

from __future__ import annotations

from typing import Any

from celpy import celtypes

from policyengine.cel.budget import charge_elements
from policyengine.cel.lib.dispatch import LIST, Function, overload, table
from policyengine.cel.lib.numeric import cel_equals


def _has(items: list[Any], value: Any) -> bool:
    return any(cel_equals(item, value) for item in items)


@overload(LIST, LIST)
def _contains(items: list[Any], subset: list[Any]) -> celtypes.BoolType:
    charge_elements(len(items) * len(subset) // 8)
    return celtypes.BoolType(all(_has(items, v) for v in subset))


@overload(LIST, LIST)
def _equivalent(left: list[Any], right: list[Any]) -> celtypes.BoolType:
    return celtypes.BoolType(bool(_contains(left, right)) and bool(_contains(right, left)))


@overload(LIST, LIST)
def _intersects(left: list[Any], right: list[Any]) -> celtypes.BoolType:
    charge_elements(len(left) * len(right) // 8)
    return celtypes.BoolType(any(_has(left, v) for v in right))


def functions() -> dict[str, list[Function]]:
    return table(
        ("sets.contains", _contains),
        ("sets.equivalent", _equivalent),
        ("sets.intersects", _intersects),
    )
