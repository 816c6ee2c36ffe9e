"""Kubernetes CEL equality, ordering and numeric conversions on cel-python values.

Kubernetes enables cel-go's ``CrossTypeNumericComparisons``: ``int``, ``uint`` and ``double`` compare by
value (``1 == 1.0``, ``5 < 10.0``). Equality of unrelated types is ``false``, not an error; ordering of
unrelated types is an error. ``string(double)`` follows Go's ``strconv.FormatFloat(d, 'g', -1, 64)``.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import Function, LibError, NoOverload, overload, table

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
_NUMBERS = (int, float)


def plain(value: Any) -> Any:
    """A number as a plain Python int or float (cel-python's own operators refuse mixed types)."""
    return float(value) if isinstance(value, float) else int(value)


def is_number(value: Any) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, celtypes.BoolType | bool)


def cel_equals(left: Any, right: Any) -> bool:
    """CEL ``==`` with heterogeneous equality: deep for lists and maps, numeric across int/uint/double."""
    if left is None or right is None:
        return left is None and right is None
    if is_number(left) and is_number(right):
        return bool(plain(left) == plain(right))
    if isinstance(left, celtypes.BoolType) or isinstance(right, celtypes.BoolType):
        return isinstance(left, celtypes.BoolType) and isinstance(right, celtypes.BoolType) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(cel_equals(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        if len(left) != len(right):
            return False
        for key, value in left.items():
            if key not in right:
                return False
            if not cel_equals(value, dict.__getitem__(right, key)):
                return False
        return True
    if isinstance(left, str) and isinstance(right, str):
        return str.__eq__(left, right)
    if isinstance(left, bytes) and isinstance(right, bytes):
        return bytes.__eq__(left, right)
    if isinstance(left, type) or isinstance(right, type):
        return left is right
    if type(left) is not type(right) and not (
        isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime)
    ):
        return False
    try:
        return bool(left == right)
    except TypeError:
        return False


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if is_number(left) and is_number(right):
        return plain(left), plain(right)
    if isinstance(left, celtypes.BoolType) and isinstance(right, celtypes.BoolType):
        return int(left), int(right)
    for kind in (str, bytes, celtypes.TimestampType, celtypes.DurationType):
        if isinstance(left, kind) and isinstance(right, kind):
            return left, right
    raise NoOverload("comparison")


def _relation(op: Callable[[Any, Any], bool]) -> Function:
    def compare(left: Any, right: Any) -> celtypes.BoolType:
        a, b = _comparable(left, right)
        if isinstance(a, str):
            return celtypes.BoolType(op(str(a), str(b)))
        return celtypes.BoolType(op(a, b))

    return compare


def compare(left: Any, right: Any) -> int:
    """-1, 0 or 1 for two comparable values (raises NoOverload otherwise)."""
    a, b = _comparable(left, right)
    if isinstance(a, str):
        a, b = str(a), str(b)
    return -1 if a < b else (1 if a > b else 0)


def _eq(left: Any, right: Any) -> celtypes.BoolType:
    return celtypes.BoolType(cel_equals(left, right))


def _ne(left: Any, right: Any) -> celtypes.BoolType:
    return celtypes.BoolType(not cel_equals(left, right))


def _in(item: Any, container: Any) -> celtypes.BoolType:
    if isinstance(container, list):
        return celtypes.BoolType(any(cel_equals(item, v) for v in container))
    if isinstance(container, dict):
        if is_number(item):
            return celtypes.BoolType(any(is_number(k) and plain(k) == plain(item) for k in container))
        return celtypes.BoolType(any(cel_equals(item, k) for k in container))
    raise NoOverload("in")


def format_double(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` (what ``fmt.Sprintf("%g")`` gives): shortest digits,
    exponent form when the decimal exponent is below -4 or at least 6 (Go fixes 6 for shortest output)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    exp = len(text) + exponent - 1  # exponent of the leading digit
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return prefix + text + "0" * (exp + 1 - len(text))
    return f"{prefix}{text[: exp + 1]}.{text[exp + 1 :]}"


def _string(value: Any) -> celtypes.StringType:
    if isinstance(value, celtypes.DoubleType):
        return celtypes.StringType(format_double(float(value)))
    if isinstance(value, celtypes.BoolType):
        return celtypes.StringType("true" if value else "false")
    if isinstance(value, celtypes.BytesType):
        try:
            return celtypes.StringType(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise LibError("invalid UTF-8 in bytes, cannot convert to string") from None
    if isinstance(value, list | dict) or value is None:
        raise NoOverload("string")
    return celtypes.StringType(value)


def _int(value: Any) -> celtypes.IntType:
    if isinstance(value, celtypes.DoubleType):
        if math.isnan(value) or not (-(2.0**63) < float(value) < 2.0**63):
            raise LibError("double is out of range for int")
        return celtypes.IntType(math.trunc(value))
    if isinstance(value, celtypes.StringType):
        try:
            return celtypes.IntType(int(str(value), 10))
        except ValueError:
            raise LibError("cannot convert string to int") from None
    if isinstance(value, celtypes.TimestampType):
        return celtypes.IntType(int(value.timestamp()))
    if isinstance(value, list | dict) or value is None:
        raise NoOverload("int")
    return celtypes.IntType(value)


def _uint(value: Any) -> celtypes.UintType:
    if isinstance(value, celtypes.DoubleType):
        if math.isnan(value) or not (0 <= float(value) < 2.0**64):
            raise LibError("double is out of range for uint")
        return celtypes.UintType(math.trunc(value))
    if isinstance(value, celtypes.StringType):
        try:
            return celtypes.UintType(int(str(value), 10))
        except ValueError:
            raise LibError("cannot convert string to uint") from None
    if isinstance(value, list | dict) or value is None:
        raise NoOverload("uint")
    return celtypes.UintType(value)


def _double(value: Any) -> celtypes.DoubleType:
    if isinstance(value, celtypes.StringType):
        try:
            return celtypes.DoubleType(float(str(value)))
        except ValueError:
            raise LibError("cannot convert string to double") from None
    if isinstance(value, list | dict | celtypes.BoolType) or value is None:
        raise NoOverload("double")
    return celtypes.DoubleType(value)


def _neg(value: Any) -> Any:
    if isinstance(value, celtypes.UintType):
        raise NoOverload("-_")
    return operator.neg(value)


def _divide(left: Any, right: Any) -> Any:
    """Double division by zero is IEEE: ±Inf, or NaN for 0/0 (cel-python returns Inf for both)."""
    if (
        isinstance(left, celtypes.DoubleType)
        and isinstance(right, celtypes.DoubleType)
        and float(right) == 0.0
    ):
        if float(left) == 0.0 or math.isnan(left):
            return celtypes.DoubleType(math.nan)
        sign = math.copysign(1.0, left) * math.copysign(1.0, right)
        return celtypes.DoubleType(math.copysign(math.inf, sign))
    raise NoOverload("_/_")


@overload((celtypes.TimestampType, celtypes.DurationType))
def _identity(value: Any) -> Any:
    """``timestamp(t)`` and ``duration(d)`` of a value that already has the type."""
    return value


def functions() -> dict[str, list[Function]]:
    return table(
        ("_/_", _divide),
        ("_==_", _eq),
        ("_!=_", _ne),
        ("_<_", _relation(operator.lt)),
        ("_<=_", _relation(operator.le)),
        ("_>_", _relation(operator.gt)),
        ("_>=_", _relation(operator.ge)),
        ("_in_", _in),
        ("-_", _neg),
        ("string", _string),
        ("int", _int),
        ("uint", _uint),
        ("double", _double),
        ("timestamp", _identity),
        ("duration", _identity),
    )
