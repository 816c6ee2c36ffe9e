"""The Kubernetes quantity library: ``quantity()``, ``isQuantity()`` and the Quantity methods.

Parsing is ``policyengine.quantity`` (``k8s.io/apimachinery`` ``resource.ParseQuantity``, within bounds);
values are exact fractions (a quantity may be ``9999999999999999999999999999999999999G``), rounded to
nano units as Kubernetes does.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import INT, STRING, Function, LibError, overload, table
from policyengine.quantity import QuantityError, QuantityRangeError
from policyengine.quantity import parse_quantity as parse

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NANO = Fraction(1, 10**9)


class Quantity:
    """A CEL ``kubernetes.Quantity``: compared by value, whatever its notation."""

    __slots__ = ("text", "value")

    def __init__(self, value: Fraction, text: str = "") -> None:
        self.value = value
        self.text = text or _format(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"quantity({self.text!r})"


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    nanos = value / _NANO
    return f"{math.ceil(nanos)}n"


def parse_quantity(text: str) -> Quantity:
    """Raises LibError with Kubernetes' message (or the shared parser's, for a value out of range)."""
    try:
        return Quantity(parse(text), text)
    except QuantityRangeError as err:
        raise LibError(f"quantity is out of range: {err}") from None
    except QuantityError as err:
        raise LibError(str(err)) from None


@overload(STRING)
def _quantity(text: str) -> Quantity:
    return parse_quantity(str(text))


@overload(STRING)
def _is_quantity(text: str) -> celtypes.BoolType:
    try:
        parse_quantity(str(text))
    except LibError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _operand(value: Any) -> Fraction:
    if isinstance(value, Quantity):
        return value.value
    return Fraction(int(value))


@overload(Quantity, (Quantity, INT))
def _add(left: Quantity, right: Any) -> Quantity:
    return Quantity(left.value + _operand(right))


@overload(Quantity, (Quantity, INT))
def _sub(left: Quantity, right: Any) -> Quantity:
    return Quantity(left.value - _operand(right))


def _cmp(left: Quantity, right: Quantity) -> int:
    return (left.value > right.value) - (left.value < right.value)


@overload(Quantity, Quantity)
def _compare_to(left: Quantity, right: Quantity) -> celtypes.IntType:
    return celtypes.IntType(_cmp(left, right))


@overload(Quantity, Quantity)
def _is_less_than(left: Quantity, right: Quantity) -> celtypes.BoolType:
    return celtypes.BoolType(_cmp(left, right) < 0)


@overload(Quantity, Quantity)
def _is_greater_than(left: Quantity, right: Quantity) -> celtypes.BoolType:
    return celtypes.BoolType(_cmp(left, right) > 0)


def _fits_int64(value: Fraction) -> bool:
    return value.denominator == 1 and _INT64_MIN <= value.numerator <= _INT64_MAX


@overload(Quantity)
def _as_integer(q: Quantity) -> celtypes.IntType:
    if not _fits_int64(q.value):
        raise LibError("cannot convert value to integer")
    return celtypes.IntType(q.value.numerator)


@overload(Quantity)
def _is_integer(q: Quantity) -> celtypes.BoolType:
    return celtypes.BoolType(_fits_int64(q.value))


@overload(Quantity)
def _as_approximate_float(q: Quantity) -> celtypes.DoubleType:
    try:
        return celtypes.DoubleType(float(q.value))
    except OverflowError:
        return celtypes.DoubleType(math.inf if q.value > 0 else -math.inf)


@overload(Quantity)
def _sign(q: Quantity) -> celtypes.IntType:
    return celtypes.IntType((q.value > 0) - (q.value < 0))


def functions() -> dict[str, list[Function]]:
    return table(
        ("quantity", _quantity),
        ("isQuantity", _is_quantity),
        ("add", _add),
        ("sub", _sub),
        ("compareTo", _compare_to),
        ("isLessThan", _is_less_than),
        ("isGreaterThan", _is_greater_than),
        ("asInteger", _as_integer),
        ("isInteger", _is_integer),
        ("asApproximateFloat", _as_approximate_float),
        ("sign", _sign),
    )
