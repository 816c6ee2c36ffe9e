"""CEL's optional values in the reference backend (cel-go ``OptionalTypes``) on cel-python's values:
``a.?f``, ``a[?k]``, selection and indexing through an optional, list and map literals with optional
entries, and the short-circuiting ``or`` / ``orValue``. Errors are returned as cel-python's
CELEvalError values, as its evaluator expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

from policyengine.cel.lib.optional import NONE, Optional


class Entry:
    """An optional list element or map key (``?x``), evaluated, until its literal unwraps it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _present_inner(target: Any) -> Any:
    return target.value if isinstance(target, Optional) and target.present else target


def select(target: Any, field: str) -> Any:
    """``target.?field``."""
    if isinstance(target, CELEvalError) or (isinstance(target, Optional) and not target.present):
        return target
    target = _present_inner(target)
    if isinstance(target, dict):
        key = celtypes.StringType(field)
        return Optional(True, target[key]) if key in target else NONE
    return CELEvalError(f"type '{type(target).__name__}' does not support field selection")


def select_member(target: Any, field: str) -> Any:
    """``target.field`` when ``target`` is not a name: through an optional it gives an optional."""
    if isinstance(target, CELEvalError):
        return target
    if isinstance(target, Optional):
        if not target.present:
            return target
        if not isinstance(target.value, dict):
            return CELEvalError("no such key")
        return select(target, field)
    if isinstance(target, celtypes.MessageType):
        return target.get(field)
    if isinstance(target, dict):
        try:
            return target[celtypes.StringType(field)]
        except KeyError:
            return CELEvalError(f"no such member in mapping: {field!r}")
    return CELEvalError(f"type '{type(target).__name__}' does not support field selection")


def index(target: Any, key: Any, subscript: Callable[[Any, Any], Any]) -> Any:
    """``target[?key]``."""
    for value in (target, key):
        if isinstance(value, CELEvalError):
            return value
    if isinstance(target, Optional) and not target.present:
        return target
    target = _present_inner(target)
    if isinstance(target, dict):
        try:
            return Optional(True, subscript(target, key))
        except (KeyError, TypeError):
            return NONE
    if isinstance(target, list):
        if isinstance(key, celtypes.DoubleType) and key == int(key):
            key = celtypes.IntType(int(key))
        if not isinstance(key, int) or isinstance(key, celtypes.BoolType):
            return CELEvalError("no such overload: _[?_]")
        return Optional(True, target[int(key)]) if 0 <= key < len(target) else NONE
    return CELEvalError("no such overload: _[?_]")


def index_member(target: Any, key: Any, subscript: Callable[[Any, Any], Any]) -> Any:
    """``target[key]``: cel-python's indexing, and an optional of the element through an optional."""
    for value in (target, key):
        if isinstance(value, CELEvalError):
            return value
    if isinstance(target, Optional):
        return index(target, key, subscript)
    try:
        return subscript(target, key)
    except TypeError:
        return CELEvalError("found no matching overload for _[_]")
    except KeyError:
        return CELEvalError("no such key")
    except IndexError:
        return CELEvalError("invalid_argument")


def list_of(values: list[Any]) -> Any:
    """A list literal's (or argument list's) values, optional elements unwrapped or left out."""
    out = celtypes.ListType()
    for value in values:
        if isinstance(value, Entry):
            value = value.value
            if isinstance(value, CELEvalError):
                return value
            if not isinstance(value, Optional):
                return CELEvalError("cannot initialize optional list element from non-optional value")
            if not value.present:
                continue
            value = value.value
        elif isinstance(value, CELEvalError):
            return value
        out.append(value)
    return out


def map_of(values: list[Any]) -> Any:
    """A map literal from alternating keys and values; an optional entry with an absent value is left out."""
    result = celtypes.MapType()
    for key, value in zip(values[0::2], values[1::2], strict=True):
        if isinstance(key, Entry):
            key = key.value
            if isinstance(key, CELEvalError):
                return key
            if isinstance(value, CELEvalError):
                return value
            if not isinstance(value, Optional):
                return CELEvalError(f"cannot initialize optional entry '{key}' from non-optional value")
            if not value.present:
                continue
            value = value.value
        if key in result:
            raise ValueError(f"Duplicate key {key!r}")
        result[key] = value
    return result


def or_else(target: Any, other: Callable[[], Any], name: str) -> Any:
    """``target.or(other)`` / ``target.orValue(other)``: ``other`` evaluated only when needed; a target
    that is not an optional (or an error) is the result, as in cel-go up to v0.27."""
    if not isinstance(target, Optional):
        return target
    if target.present:
        return target.value if name == "orValue" else target
    return other()


def has(target: Optional, field: str) -> celtypes.BoolType:
    """``has(opt.field)``: the optional is present, a map, and has the key."""
    inner = target.value
    return celtypes.BoolType(
        target.present and isinstance(inner, dict) and celtypes.StringType(field) in inner
    )
