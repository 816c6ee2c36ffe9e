"""Overload dispatch by argument type, and the errors library functions raise.

cel-python looks functions up by name only, so one CEL name (``indexOf`` on a string or on a list,
``compareTo`` on a quantity or a semver) must pick its implementation from the argument types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from celpy import celtypes

Function = Callable[..., Any]
F = TypeVar("F", bound=Function)


class LibError(Exception):
    """A library function failed for a reason the caller should see (bad argument value, ...)."""


class NoOverload(TypeError):
    """No implementation of a function accepts these argument types."""

    def __init__(self, name: str = "") -> None:
        super().__init__(f"no such overload: {name}" if name else "no such overload")


class _Any:
    """Marker for a parameter of any type."""


ANY: type = _Any
INT = celtypes.IntType
UINT = celtypes.UintType
DOUBLE = celtypes.DoubleType
BOOL = celtypes.BoolType
STRING = celtypes.StringType
BYTES = celtypes.BytesType
LIST: type = list  # any list: cel-python's own list + list returns a plain list
MAP: type = dict


def _accepts(kind: type, value: Any) -> bool:
    if kind is _Any:
        return True
    if kind is list:
        return isinstance(value, list)
    if kind is dict:
        return isinstance(value, dict)
    return isinstance(value, kind)


def overload(*kinds: type | tuple[type, ...]) -> Callable[[F], F]:
    """Declare the argument types an implementation accepts; other types raise NoOverload."""

    def decorate(fn: F) -> F:
        def checked(*args: Any) -> Any:
            if len(args) != len(kinds):
                raise NoOverload(fn.__name__)
            for kind, arg in zip(kinds, args, strict=True):
                options = kind if isinstance(kind, tuple) else (kind,)
                if not any(_accepts(k, arg) for k in options):
                    raise NoOverload(fn.__name__)
            return fn(*args)

        checked.__name__ = fn.__name__
        checked.__doc__ = fn.__doc__
        return cast(F, checked)

    return decorate


def combine(name: str, impls: Iterable[Function]) -> Function:
    """One function trying each implementation in turn until one accepts the arguments."""
    candidates = tuple(impls)
    if len(candidates) == 1:
        return candidates[0]

    def dispatch(*args: Any) -> Any:
        for impl in candidates:
            try:
                return impl(*args)
            except NoOverload:
                continue
        raise NoOverload(name)

    dispatch.__name__ = name
    return dispatch


def table(*entries: tuple[str, Function]) -> dict[str, list[Function]]:
    """A library's function table from (name, implementation) pairs; a name may repeat (overloads)."""
    out: dict[str, list[Function]] = {}
    for name, fn in entries:
        out.setdefault(name, []).append(fn)
    return out
