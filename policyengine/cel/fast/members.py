"""Field selection for the fast backend: ``a.b.c`` chains walked in one closure, CEL's qualified names
(``a.b.c`` bound as one dotted name), and selection on the values that are not maps (the lazy
``variables`` map, optionals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policyengine.cel.fast.values import CelError, no_overload
from policyengine.cel.lib.optional import Optional

Ctx = list[Any]
Fn = Callable[[Ctx], Any]


class LazyVariablesBase:
    """What the compiled code needs of the ``variables`` map (implemented in the package's port)."""

    __slots__ = ()

    defined: frozenset[str]

    def get(self, name: str, meter: Any) -> Any:
        raise NotImplementedError


# A key present in the bindings only when some binding has a dotted name (``a.b.c``), so that plain
# requests never pay for CEL's qualified-name resolution.
DOTTED_MARK = "\0dotted"


def walk(value: Any, fields: list[str], ctx: Ctx) -> Any:
    for field in fields:
        if type(value) is dict:
            try:
                value = value[field]
            except KeyError:
                raise CelError(f"no such member in mapping: {field!r}") from None
        else:
            value = select_other(value, field, ctx)
    return value


def slot_chain(slot: int, fields: list[str]) -> Fn:
    """``c.securityContext.capabilities`` on a comprehension variable, walked in one closure."""
    if len(fields) == 1:
        (field,) = fields

        # The commonest shape (``c.image``) inlined: one dict lookup, no loop.
        def select(ctx: Ctx) -> Any:
            value = ctx[slot]
            if type(value) is dict:
                try:
                    return value[field]
                except KeyError:
                    raise CelError(f"no such member in mapping: {field!r}") from None
            return select_other(value, field, ctx)

        return select
    return lambda ctx: walk(ctx[slot], fields, ctx)


def variable_chain(root: str, fields: list[str]) -> Fn:
    """``object.spec.template`` walked in one closure; with dotted bindings the longest bound prefix
    (``a.b`` in ``a.b.c``) wins, as CEL resolves qualified names."""
    prefixes = [(".".join([root, *fields[:n]]), fields[n:]) for n in range(len(fields), 0, -1)]

    def chain(ctx: Ctx) -> Any:
        values = ctx[0]
        if DOTTED_MARK in values:
            for name, rest in prefixes:
                if name in values:
                    return walk(values[name], rest, ctx)
        try:
            value = values[root]
        except KeyError:
            raise CelError(f"undeclared reference to '{root}'") from None
        for field in fields:
            if type(value) is dict:
                try:
                    value = value[field]
                except KeyError:
                    raise CelError(f"no such member in mapping: {field!r}") from None
            else:
                value = select_other(value, field, ctx)
        return value

    return chain


def select_other(value: Any, field: str, ctx: Ctx) -> Any:
    if isinstance(value, LazyVariablesBase):
        if field not in value.defined:
            raise CelError(f"no such member in mapping: {field!r}")
        return value.get(field, ctx[1])
    if isinstance(value, Optional):
        # cel-go: selecting a field of an optional map gives an optional (absent if the key is); a
        # present value that is not a map has no fields.
        if not value.present:
            return value
        if isinstance(value.value, dict):
            return Optional(True, value.value[field]) if field in value.value else Optional(False)
        raise CelError("no such key")
    raise CelError(f"type '{type(value).__name__}' does not support field selection")


def has_other(value: Any, field: str) -> bool:
    """``has(value.field)`` on a value that is not a map."""
    if isinstance(value, LazyVariablesBase):
        return field in value.defined
    if isinstance(value, Optional):
        return value.present and isinstance(value.value, dict) and field in value.value
    if value is None:
        # Gatekeeper's ``has(variables.params.x)`` with no parameters: absent, as the reference
        # backend and the gatekeeper tests have it.
        return False
    raise no_overload("has", value)
