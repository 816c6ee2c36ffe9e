"""How the fast backend represents CEL values on plain Python ones, and the boundary to cel-python's.

A request's JSON values are used as they are: ``dict`` is a map, ``list`` (or ``tuple``) a list, ``str``,
``int``, ``float``, ``bool``, ``None`` and ``bytes`` the scalars. Only ``uint`` needs a type of its own
(``Uint``, an ``int`` subclass, so ``type(x) is int`` still means CEL ``int``). Timestamps, durations
and the library values (quantities, IPs, semvers, optionals, ...) are cel-python's own objects, so the
shared libraries implement them once. ``to_ref``/``from_ref`` convert only the arguments and result of a
library call, never the whole request.

An error is a ``CelError``. It travels as a raised exception, which costs nothing on the error-free path
(a check after every node would), and the operators that absorb errors (``&&``, ``||``, ``all``,
``exists``) catch it and hold it as a value until they know whether it decides the result.
"""

from __future__ import annotations

import datetime
from typing import Any

import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, celbytes, celstr

from policyengine.cel.lib.optional import Optional
from policyengine.cel.values import from_cel

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
NONE_TYPE = type(None)


class Uint(int):
    """A CEL ``uint``: a Python int that ``type(x) is int`` tells apart from a CEL ``int``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class CelError(Exception):
    """A CEL error value (``no such key``, ``division by zero``, ``no such overload``...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def no_overload(name: str, *args: Any) -> CelError:
    kinds = ", ".join(type_name(a) for a in args)
    return CelError(f"found no matching overload for '{name}' applied to '({kinds})'")


_CORE_TYPES: dict[type, type] = {
    bool: celtypes.BoolType, int: celtypes.IntType, Uint: celtypes.UintType, float: celtypes.DoubleType,
    str: celtypes.StringType, bytes: celtypes.BytesType, list: celtypes.ListType, tuple: celtypes.ListType,
    dict: celtypes.MapType, NONE_TYPE: NONE_TYPE,
}  # fmt: skip
_NAMES: dict[type, str] = {
    bool: "bool", int: "int", Uint: "uint", float: "double", str: "string", bytes: "bytes",
    list: "list", tuple: "list", dict: "map", NONE_TYPE: "null_type",
}  # fmt: skip


def type_name(value: Any) -> str:
    return _NAMES.get(type(value)) or type(value).__name__.removesuffix("Type").lower()


def type_of(value: Any) -> Any:
    """The CEL type of ``value`` as the reference backend spells it (cel-python's type classes)."""
    kind = _CORE_TYPES.get(type(value))
    if kind is not None:
        return kind
    return celtypes.TypeType(to_ref(value))


def to_ref(value: Any) -> Any:
    """A fast-backend value as a cel-python value (for a library call's arguments)."""
    kind = type(value)
    if kind is str:
        return celtypes.StringType(value)
    if kind is bool:
        return celtypes.BoolType(value)
    if kind is int:
        return celtypes.IntType(value)
    if kind is float:
        return celtypes.DoubleType(value)
    if kind is Uint:
        return celtypes.UintType(value)
    if kind is bytes:
        return celtypes.BytesType(value)
    if kind is list or kind is tuple:
        return celtypes.ListType([to_ref(v) for v in value])
    if kind is dict:
        return celtypes.MapType({to_ref(k): to_ref(v) for k, v in value.items()})
    if kind is datetime.datetime:
        return celtypes.TimestampType(value)
    if kind is datetime.timedelta:
        return celtypes.DurationType(value)
    if kind is Optional:
        return Optional(True, to_ref(value.value)) if value.present else value
    return value


def from_ref(value: Any) -> Any:
    """A cel-python value (a library call's result) as a fast-backend value; raises a CEL error."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.UintType):
        return Uint(value)
    if isinstance(value, celtypes.IntType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, CELEvalError):
        raise CelError(str(value.args[0]) if value.args else "evaluation error")
    if type(value) is celtypes.ListType or type(value) is list:
        return [from_ref(v) for v in value]
    if type(value) is celtypes.MapType or type(value) is dict:
        return {from_ref(k): from_ref(v) for k, v in value.items()}
    if type(value) is datetime.timedelta:
        return celtypes.DurationType(value)
    if type(value) is Optional and value.present:
        # An optional holds a fast-backend value inside the fast backend.
        return Optional(True, from_ref(value.value))
    return value


def to_plain(value: Any) -> Any:
    """A result as the port's plain Python value, exactly as the reference backend returns it."""
    kind = type(value)
    if kind is bool or kind is str or kind is int or kind is float or value is None:
        return value
    if kind is dict:
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_plain(v) for v in value]
    return from_cel(to_ref(value))


def literal_value(token: lark.Token) -> Any:
    """A literal token of the source as a fast-backend value."""
    kind = token.type
    if kind == "INT_LIT":
        return int(celtypes.IntType(token.value))
    if kind == "UINT_LIT":
        return Uint(celtypes.UintType(token.value[:-1]))
    if kind == "FLOAT_LIT":
        return float(celtypes.DoubleType(token.value))
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return str(celstr(token))
    if kind == "BYTES_LIT":
        return bytes(celbytes(token))
    if kind == "BOOL_LIT":
        return token.value == "true"
    if kind == "NULL_LIT":
        return None
    return from_ref(token.value)
