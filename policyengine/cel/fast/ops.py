"""CEL's operators on fast-backend values: equality, ordering, arithmetic, ``in``, indexing, selection.

The common cases (same-type ints, strings, lists, maps) are handled inline; anything else (timestamps,
durations, library values) goes to cel-python's operator on converted operands, so both backends share
one implementation of the rare types. Kubernetes' rules hold: ``int``, ``uint`` and ``double`` compare
by value across types, equality of unrelated types is ``false``, arithmetic never mixes types, and
``int``/``uint`` results out of 64 bits are errors.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from celpy import celtypes

from policyengine.cel.fast.values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    CelError,
    Uint,
    from_ref,
    no_overload,
    to_ref,
)
from policyengine.cel.lib.numeric import cel_equals, compare

_NUMBER = (int, float, Uint)
_SCALAR_EQ = (str, int, bool, bytes)
_ORDERED_SAME = (str, bytes, bool)


def is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float or kind is Uint


def eq(a: Any, b: Any) -> bool:
    """CEL ``==``: heterogeneous equality is false, numbers compare by value, lists and maps deeply."""
    ta, tb = type(a), type(b)
    if ta is tb and ta in _SCALAR_EQ:
        return bool(a == b)
    if a is None or b is None:
        return a is None and b is None
    if ta in _NUMBER and tb in _NUMBER:
        return bool(a == b)
    if ta is bool or tb is bool:
        return False
    if ta in (list, tuple) and tb in (list, tuple):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict and tb is dict:
        if len(a) != len(b):
            return False
        for key, value in a.items():
            found = lookup(b, key)
            if found is MISSING or not eq(value, found):
                return False
        return True
    if ta in _SCALAR_EQ or tb in _SCALAR_EQ or ta in (list, tuple, dict) or tb in (list, tuple, dict):
        return False
    return cel_equals(to_ref(a), to_ref(b))


MISSING: Any = object()


def lookup(mapping: dict[Any, Any], key: Any) -> Any:
    """The entry of ``key`` in a CEL map (numeric keys match across int/uint/double), or MISSING."""
    kind = type(key)
    if kind is str:
        return mapping.get(key, MISSING)
    if kind is bool:
        for k, v in mapping.items():
            if type(k) is bool and k == key:
                return v
        return MISSING
    if kind in _NUMBER:
        for k, v in mapping.items():
            if type(k) in _NUMBER and k == key:
                return v
        return MISSING
    for k, v in mapping.items():
        if eq(k, key):
            return v
    return MISSING


def _order(name: str, a: Any, b: Any) -> int:
    ta, tb = type(a), type(b)
    if ta in _NUMBER and tb in _NUMBER:
        if a != a or b != b:  # NaN: every ordering is false
            return 2
        if (ta is float) is not (tb is float):
            # cel-go orders an int against a double as doubles (9223372036854775807 is not less than
            # 9223372036854775808.0); Python would compare exactly.
            a, b = float(a), float(b)
        return -1 if a < b else (1 if a > b else 0)
    if ta is tb and ta in _ORDERED_SAME:
        return -1 if a < b else (1 if a > b else 0)
    if ta in _REF_ORDERED and tb in _REF_ORDERED:
        try:
            return compare(to_ref(a), to_ref(b))
        except TypeError:
            pass
    raise no_overload(name, a, b)


_REF_ORDERED = (celtypes.TimestampType, celtypes.DurationType)


def lt(a: Any, b: Any) -> bool:
    if type(a) is int and type(b) is int:
        return bool(a < b)
    return _order("_<_", a, b) == -1


def le(a: Any, b: Any) -> bool:
    if type(a) is int and type(b) is int:
        return bool(a <= b)
    return _order("_<=_", a, b) in (-1, 0)


def gt(a: Any, b: Any) -> bool:
    if type(a) is int and type(b) is int:
        return bool(a > b)
    return _order("_>_", a, b) == 1


def ge(a: Any, b: Any) -> bool:
    if type(a) is int and type(b) is int:
        return bool(a >= b)
    return _order("_>=_", a, b) in (0, 1)


def _int_result(value: int) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise CelError("return error for overflow")


def _uint_result(value: int) -> Uint:
    if 0 <= value <= UINT64_MAX:
        return Uint(value)
    raise CelError("return error for overflow")


def _by_reference(name: str, op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """Timestamps, durations and library values: cel-python's operator on converted operands."""
    try:
        result = op(to_ref(a), to_ref(b))
    except (TypeError, AttributeError):
        raise no_overload(name, a, b) from None
    except (ValueError, OverflowError, ArithmeticError) as err:
        raise CelError(f"{name}: {err}") from None
    if result is NotImplemented:
        raise no_overload(name, a, b)
    return from_ref(result)


def _reference_operands(a: Any, b: Any) -> bool:
    plain = (int, float, Uint, str, bytes, bool, list, tuple, dict, type(None))
    return type(a) not in plain or type(b) not in plain


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a + b)
        if ta is str or ta is float or ta is bytes:
            return a + b
        if ta is list:
            return [*a, *b]
        if ta is Uint:
            return _uint_result(a + b)
    if ta in (list, tuple) and tb in (list, tuple):
        return [*a, *b]
    if _reference_operands(a, b):
        return _by_reference("_+_", operator.add, a, b)
    raise no_overload("_+_", a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a - b)
        if ta is float:
            return a - b
        if ta is Uint:
            return _uint_result(a - b)
    if _reference_operands(a, b):
        return _by_reference("_-_", operator.sub, a, b)
    raise no_overload("_-_", a, b)


def mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a * b)
        if ta is float:
            return a * b
        if ta is Uint:
            return _uint_result(a * b)
    raise no_overload("_*_", a, b)


def _truncated(a: int, b: int) -> int:
    """Go's integer division: truncation toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def div(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int or ta is Uint:
            if b == 0:
                raise CelError("division by zero")
            if ta is Uint:
                return Uint(a // b)
            return _int_result(_truncated(a, b))
        if ta is float:
            if b == 0.0:
                if a == 0.0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, math.copysign(1.0, a) * math.copysign(1.0, b))
            return a / b
    if _reference_operands(a, b):
        return _by_reference("_/_", operator.truediv, a, b)
    raise no_overload("_/_", a, b)


def mod(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb and (ta is int or ta is Uint):
        if b == 0:
            raise CelError("modulus by zero")
        if ta is Uint:
            return Uint(a % b)
        return _int_result(a - b * _truncated(a, b))
    raise no_overload("_%_", a, b)


def neg(a: Any) -> Any:
    kind = type(a)
    if kind is int:
        return _int_result(-a)
    if kind is float:
        return -a
    if kind is celtypes.DurationType:
        return from_ref(-a)
    raise no_overload("-_", a)


def in_(item: Any, container: Any) -> bool:
    kind = type(container)
    if kind is dict:
        if type(item) is str:
            return item in container
        return lookup(container, item) is not MISSING
    if kind is list or kind is tuple:
        if type(item) is str:
            # Python's ``in`` first (C speed): it is true whenever an equal str is there, so false ends it.
            if item not in container:
                return False
            return type(container[container.index(item)]) is str or any(
                type(x) is str and x == item for x in container
            )
        return any(eq(item, x) for x in container)
    if hasattr(container, "defined"):  # the lazy ``variables`` map
        return type(item) is str and item in container.defined
    raise no_overload("@in", item, container)


def index(container: Any, key: Any) -> Any:
    kind = type(container)
    if kind is dict:
        value = lookup(container, key)
        if value is MISSING:
            raise CelError("no such key")
        return value
    if kind is list or kind is tuple:
        ki = type(key)
        if ki is float and math.isfinite(key) and key == int(key):
            # cel-go accepts a double index with an integral value ([7, 8][dyn(0.0)]).
            key, ki = int(key), int
        if ki is int or ki is Uint:
            if 0 <= key < len(container):
                return container[key]
            raise CelError(f"index out of bounds: {key}")
        raise no_overload("_[_]", container, key)
    raise no_overload("_[_]", container, key)


def size(value: Any) -> int:
    kind = type(value)
    if kind is str or kind is bytes or kind is list or kind is dict or kind is tuple:
        return len(value)
    raise no_overload("size", value)
