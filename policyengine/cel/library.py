"""The function table of the environment: cel-python's standard library plus the Kubernetes libraries.

Built once per backend. Overloads of one name from several libraries are combined (the most specific
first, cel-python's own implementation last), and every function is guarded so a LibError becomes a CEL
error value with its message, as cel-go reports it, and so the call is charged the size of its arguments
before it runs (``budget.argument_cost``) in either backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions

from policyengine.cel.budget import argument_cost, charge
from policyengine.cel.lib import (
    format as format_lib,
)
from policyengine.cel.lib import (
    ip,
    kyverno,
    kyverno_resource,
    kyverno_x509,
    lists,
    numeric,
    optional,
    quantity,
    regex,
    semver,
    sets,
    string_format,
    strings,
    url,
)
from policyengine.cel.lib.dispatch import Function, LibError, combine

# Libraries in dispatch order: a name's overloads are tried in this order, the core's last.
_LIBRARIES = (
    quantity, semver, ip, url, format_lib, optional, kyverno, kyverno_resource, kyverno_x509, lists, sets, regex, strings, string_format, numeric,
)  # fmt: skip


# Core functions the libraries replace outright rather than extend.
_REPLACED = frozenset({"_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "_in_", "matches"})
# Core functions with no library overload that copy their argument (``bytes(s)`` encodes it): guarded
# too, so they are charged like the library's.
_COPYING_CORE = ("bytes",)


def _guard(name: str, fn: Function) -> Function:
    # Operators build nothing larger than a scalar (``+``, the one that does, is charged by its size).
    sized = not name.startswith(("_", "-"))

    def guarded(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        if sized:
            charge(argument_cost(args))
        try:
            return fn(*args)
        except LibError as err:
            return CELEvalError(str(err))
        except (OverflowError, ArithmeticError) as err:
            return CELEvalError(f"{name}: {err}")

    guarded.__name__ = name
    return guarded


def build_functions() -> dict[str, Function]:
    """CEL function name (``lists.range`` for namespaced ones) -> implementation."""
    merged: dict[str, list[Function]] = {}
    for library in _LIBRARIES:
        for name, impls in library.functions().items():
            merged.setdefault(name, []).extend(impls)
    table: dict[str, Function] = {}
    for name, impls in merged.items():
        core = base_functions.get(name)
        chain = [*impls, core] if core is not None and name not in _REPLACED else impls
        table[name] = _guard(name, combine(name, chain))
    for name in _COPYING_CORE:
        table.setdefault(name, _guard(name, base_functions[name]))
    return table


def type_names() -> Mapping[str, Any]:
    """Dotted identifiers bound to library types, for ``type(x) == net.IP``."""
    return {"net.IP": ip.IPAddress, "net.CIDR": ip.CIDR, "optional_type": optional.Optional}


# Identifiers naming types: ``type(1) == int``. Bound as values so the function of the same name still
# converts (``int('1')``).
_TYPE_IDENTS: dict[str, Any] = {
    "int": celtypes.IntType, "uint": celtypes.UintType, "double": celtypes.DoubleType,
    "bool": celtypes.BoolType, "string": celtypes.StringType, "bytes": celtypes.BytesType,
    "list": celtypes.ListType, "map": celtypes.MapType, "null_type": type(None),
    "type": celtypes.TypeType, "google.protobuf.Duration": celtypes.DurationType,
    "google.protobuf.Timestamp": celtypes.TimestampType,
}  # fmt: skip


def type_identifiers() -> Mapping[str, Any]:
    """Every identifier that names a type when no binding shadows it: the core types and the library's."""
    return {**_TYPE_IDENTS, **type_names()}


def known_names(functions: Mapping[str, Function]) -> frozenset[str]:
    """Every callable name: the table plus cel-python's core and the macros handled in the evaluator."""
    return frozenset(functions) | frozenset(base_functions) - {"reduce"} | {"has", "dyn"}
