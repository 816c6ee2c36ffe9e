"""CEL optional values (cel-go ``OptionalTypes``): the value type and ``optional.of``, ``optional.none``,
``optional.ofNonZeroValue``, ``hasValue()``, ``value()``, ``orValue()``, ``or()`` on cel-python values.

The syntax (``a.?f``, ``a[?k]``, ``[?x]``, ``{?k: v}``) is in the project's grammar (``cel/cel.lark``);
each backend evaluates it (``fast/optionals.py``, ``reference/optionals.py``), and both evaluate
``or``/``orValue`` lazily there, so the functions here serve only calls made through the library.
"""

from __future__ import annotations

from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import ANY, Function, LibError, overload, table
from policyengine.cel.lib.numeric import cel_equals


class Optional:
    """A CEL ``optional_type`` value: present with a value, or absent."""

    __slots__ = ("present", "value")

    def __init__(self, present: bool, value: Any = None) -> None:
        self.present = present
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optional) or self.present != other.present:
            return False
        return not self.present or cel_equals(self.value, other.value)

    def __hash__(self) -> int:
        return hash(self.present)

    def __str__(self) -> str:
        return f"optional.of({self.value!s})" if self.present else "optional.none()"


NONE = Optional(False)


def of(value: Any) -> Optional:
    return Optional(True, value)


@overload(ANY)
def _of(value: Any) -> Optional:
    return of(value)


def _none() -> Optional:
    return NONE


def _is_zero(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, celtypes.BoolType | int | float | str | bytes | list | dict):
        return not value
    return False


@overload(ANY)
def _of_non_zero(value: Any) -> Optional:
    return NONE if _is_zero(value) else of(value)


@overload(Optional)
def _has_value(opt: Optional) -> celtypes.BoolType:
    return celtypes.BoolType(opt.present)


@overload(Optional)
def _value(opt: Optional) -> Any:
    if not opt.present:
        raise LibError("optional.none() dereference")
    return opt.value


@overload(Optional, ANY)
def _or_value(opt: Optional, default: Any) -> Any:
    return opt.value if opt.present else default


@overload(Optional, Optional)
def _or(opt: Optional, other: Optional) -> Optional:
    return opt if opt.present else other


def functions() -> dict[str, list[Function]]:
    return table(
        ("optional.of", _of),
        ("optional.none", _none),
        ("optional.ofNonZeroValue", _of_non_zero),
        ("hasValue", _has_value),
        ("value", _value),
        ("orValue", _or_value),
        ("or", _or),
    )
