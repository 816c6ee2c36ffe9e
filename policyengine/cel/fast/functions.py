"""Function calls for the fast backend: a few hot functions inline, everything else through the shared
libraries.

The Kubernetes libraries and the cel-go extensions are implemented once, over cel-python values
(``policyengine/cel/lib``), and both backends call the same table (``library.build_functions``). Here a
call converts just its arguments to cel-python values and its result back (``Library.call``). The
functions policies call on every request (``size``, ``startsWith``, ``endsWith``, ``contains``,
``matches`` and the common conversions) have an inline path for plain values that falls back to the
shared implementation for anything else, so the two backends cannot disagree on the unusual cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celpy.evaluation import CELEvalError, base_functions

from policyengine.cel.budget import ELEMENT_COST_DIVISOR, Meter, current, enter, leave, sized_cost
from policyengine.cel.fast import optionals
from policyengine.cel.fast.values import CelError, Uint, from_ref, no_overload, to_ref, type_of
from policyengine.cel.lib.dispatch import Function, LibError
from policyengine.cel.lib.regex import compile_pattern
from policyengine.cel.library import build_functions

# A fast function: the evaluated arguments (receiver first for a method) and the evaluation's meter.
Native = Callable[[list[Any], Meter], Any]
_FAILURES = (LibError, TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError)


class Library:
    """The environment's shared function table (read-only once built), called across the boundary."""

    def __init__(self) -> None:
        table: dict[str, Function] = {k: v for k, v in base_functions.items() if callable(v)}
        table.update(build_functions())
        self.table: Mapping[str, Function] = table

    def call(self, name: str, args: list[Any], meter: Meter) -> Any:
        fn = self.table.get(name)
        if fn is None:
            raise CelError(f"undeclared reference to '{name}'")
        # Converting copies every string and list of the arguments, nested: charge that copy before
        # making it. (The call itself is charged its arguments' size by the library's guard.)
        cost = _conversion_cost(args, meter)
        if cost:
            meter.charge(cost)
        converted = [to_ref(a) for a in args]
        # Library functions charge what they allocate to the current meter (a context variable).
        token = enter(meter) if current() is not meter else None
        try:
            result = fn(*converted)
        except CELEvalError as err:
            result = err
        except _FAILURES as err:
            raise CelError(f"{name}: {err}" if str(err) else f"no such overload: {name}") from None
        finally:
            if token is not None:
                leave(token)
        # The result was charged by the call (its arguments' size, and what it builds beyond them) before
        # it was built; charging it again here would pay twice, and too late to stop the build.
        return from_ref(result)


def _conversion_cost(args: list[Any], meter: Meter) -> int:
    """What converting ``args`` costs; scalar arguments (the usual case) without walking anything."""
    chars = 0
    for arg in args:
        kind = type(arg)
        if kind is str or kind is bytes:
            chars += len(arg)
        elif kind is list or kind is tuple or kind is dict:
            return sized_cost(args, meter.max_cost - meter.cost + 1)
    return chars // ELEMENT_COST_DIVISOR


def _str_method(name: str, op: Callable[[str, str], bool], library: Library) -> Native:
    def method(args: list[Any], meter: Meter) -> Any:
        if len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
            return op(args[0], args[1])
        return library.call(name, args, meter)

    return method


def _matches(library: Library) -> Native:
    def matches(args: list[Any], meter: Meter) -> Any:
        if len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
            try:
                pattern = compile_pattern(args[1])
            except LibError as err:
                raise CelError(str(err)) from None
            return pattern.search(args[0]) is not None
        return library.call("matches", args, meter)

    return matches


def _size(library: Library) -> Native:
    def size(args: list[Any], meter: Meter) -> Any:
        if len(args) == 1:
            kind = type(args[0])
            if kind is str or kind is list or kind is dict or kind is bytes or kind is tuple:
                return len(args[0])
        return library.call("size", args, meter)

    return size


def _conversion(
    name: str, same: type, inline: Mapping[type, Callable[[Any], Any]], library: Library
) -> Native:
    def convert(args: list[Any], meter: Meter) -> Any:
        if len(args) == 1:
            kind = type(args[0])
            if kind is same:
                return args[0]
            fn = inline.get(kind)
            if fn is not None:
                return fn(args[0])
        return library.call(name, args, meter)

    return convert


def _bool(library: Library) -> Native:
    def convert(args: list[Any], meter: Meter) -> Any:
        if len(args) == 1 and type(args[0]) is bool:
            return args[0]
        if len(args) == 1 and type(args[0]) is str:
            return library.call("bool", args, meter)
        # CEL converts only bools and strings; cel-python would take any Python truth value.
        raise no_overload("bool", *args)

    return convert


def _type(args: list[Any], meter: Meter) -> Any:
    if len(args) != 1:
        raise CelError("no such overload: type")
    return type_of(args[0])


def _dyn(args: list[Any], meter: Meter) -> Any:
    if len(args) != 1:
        raise CelError("no such overload: dyn")
    return args[0]


def natives(library: Library) -> dict[str, Native]:
    """Functions and methods with an inline path (by CEL name)."""
    return {
        "size": _size(library),
        "startsWith": _str_method("startsWith", str.startswith, library),
        "endsWith": _str_method("endsWith", str.endswith, library),
        "contains": _str_method("contains", str.__contains__, library),
        "matches": _matches(library),
        "string": _conversion("string", str, {int: str}, library),
        "int": _conversion("int", int, {}, library),
        "double": _conversion("double", float, {int: float}, library),
        "uint": _conversion("uint", Uint, {}, library),
        "bool": _bool(library),
        "type": _type,
        "dyn": _dyn,
        **optionals.NATIVES,
    }
