"""The Kubernetes quantity library: ``quantity()``, ``isQuantity()`` and the Quantity methods.

Parsing follows ``k8s.io/apimachinery`` ``resource.ParseQuantity``; values are exact fractions (a
quantity may be ``9999999999999999999999999999999999999G``), rounded up to nano units as Kubernetes does.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import INT, STRING, Function, LibError, overload, table

_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_EXPONENT = re.compile(r"^[eE][-+]?[0-9]+$")
_MAX_EXPONENT = 1000  # far beyond any real quantity; keeps Fraction arithmetic bounded
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
    """Raises LibError with Kubernetes' message."""
    shape = _SHAPE.match(text)
    if not shape:
        raise LibError(
            r"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    number, suffix = shape.group(1), shape.group(2)
    if not _NUMBER.match(number):
        raise LibError("quantities must match the regular expression")
    if suffix in _DECIMAL_SI:
        scale = Fraction(10) ** _DECIMAL_SI[suffix]
    elif suffix in _BINARY_SI:
        scale = Fraction(2) ** _BINARY_SI[suffix]
    elif _EXPONENT.match(suffix) and abs(int(suffix[1:])) <= _MAX_EXPONENT:
        scale = Fraction(10) ** int(suffix[1:])
    else:
        raise LibError("unable to parse quantity's suffix")
    value = Fraction(number) * scale
    if (value / _NANO).denominator != 1:  # Kubernetes rounds sub-nano precision up (away from zero)
        nanos = value / _NANO
        value = Fraction(math.ceil(nanos) if nanos > 0 else math.floor(nanos)) * _NANO
    return Quantity(value, text)


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
