"""CEL's optional values in the fast backend (cel-go ``OptionalTypes``): ``a.?f`` and ``a[?k]``, the
optional entries of list and map literals (``[?x]``, ``{?k: v}``), selection through an optional, the
short-circuiting ``or`` / ``orValue``, and the optional functions as natives.

An optional holds a fast-backend value (converted at the library boundary like any other value), so
``object.?spec.?template`` never copies the object it walks.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import lark

from policyengine.cel.budget import Meter
from policyengine.cel.fast import ops
from policyengine.cel.fast.members import LazyVariablesBase
from policyengine.cel.fast.values import CelError, Uint, no_overload
from policyengine.cel.lib.optional import NONE, Optional

Ctx = list[Any]
Fn = Callable[[Ctx], Any]


def select(value: Any, field: str, ctx: Ctx) -> Optional:
    """``value.?field``: the field when present, else ``optional.none()``; through an optional."""
    if type(value) is Optional:
        if not value.present:
            return value
        value = value.value
    if type(value) is dict:
        return Optional(True, value[field]) if field in value else NONE
    if isinstance(value, LazyVariablesBase):
        return Optional(True, value.get(field, ctx[1])) if field in value.defined else NONE
    raise CelError(f"type '{type(value).__name__}' does not support field selection")


def index(value: Any, key: Any, ctx: Ctx) -> Optional:
    """``value[?key]``: the element or entry when present, else ``optional.none()``."""
    if type(value) is Optional:
        if not value.present:
            return value
        value = value.value
    if isinstance(value, LazyVariablesBase):
        if type(key) is not str:
            raise no_overload("_[?_]", value, key)
        return Optional(True, value.get(key, ctx[1])) if key in value.defined else NONE
    if type(value) is dict:
        found = ops.lookup(value, key)
        return NONE if found is ops.MISSING else Optional(True, found)
    if type(value) is list or type(value) is tuple:
        if type(key) is float and key == int(key):
            key = int(key)
        if type(key) is not int and type(key) is not Uint:
            raise no_overload("_[?_]", value, key)
        return Optional(True, value[key]) if 0 <= key < len(value) else NONE
    raise no_overload("_[?_]", value, key)


def select_present(value: Optional, field: str) -> Optional:
    """``opt.field`` on an optional: an optional of the field (absent if the key is); a present value
    that is not a map has no fields."""
    if not value.present:
        return value
    inner = value.value
    if type(inner) is dict:
        return Optional(True, inner[field]) if field in inner else NONE
    raise CelError("no such key")


def list_entries(items: list[tuple[Fn, bool]]) -> Fn:
    """A list literal with optional elements: a present element is added, an absent one left out."""

    def build(ctx: Ctx) -> list[Any]:
        out = []
        for item, optional in items:
            value = item(ctx)
            if optional:
                if type(value) is not Optional:
                    raise CelError("cannot initialize optional list element from non-optional value")
                if not value.present:
                    continue
                value = value.value
            out.append(value)
        return out

    return build


def unwrap_entry(key: Any, value: Any) -> tuple[bool, Any]:
    """(keep, value) for an optional map entry ``{?key: value}``."""
    if type(value) is not Optional:
        raise CelError(f"cannot initialize optional entry '{key}' from non-optional value")
    return value.present, value.value


def or_else(target: Fn, other: Fn, or_value: bool) -> Fn:
    """``a.or(b)`` and ``a.orValue(b)``: ``b`` is evaluated only when ``a`` is absent. A value of ``a``
    that is not an optional is the result, as cel-go's evalOptionalOr/evalOptionalOrValue have it up
    to v0.27 (the versions Kubernetes runs; v0.28 makes it 'no such overload')."""

    def choose(ctx: Ctx) -> Any:
        value = target(ctx)
        if type(value) is not Optional:
            return value
        if value.present:
            return value.value if or_value else value
        return other(ctx)

    return choose


def is_zero(value: Any) -> bool:
    """cel-go's zero values: null, false, 0, 0u, 0.0, empty strings, bytes, lists and maps, 0s."""
    if value is None or value is False:
        return True
    kind = type(value)
    if kind in (int, float, Uint, str, bytes, list, tuple, dict) and value is not True:
        return not value
    if isinstance(value, datetime.timedelta):
        return value == datetime.timedelta(0)
    return False


def _of(args: list[Any], meter: Meter) -> Optional:
    if len(args) != 1:
        raise CelError("no such overload: optional.of")
    return Optional(True, args[0])


def _none(args: list[Any], meter: Meter) -> Optional:
    if args:
        raise CelError("no such overload: optional.none")
    return NONE


def _of_non_zero(args: list[Any], meter: Meter) -> Optional:
    if len(args) != 1:
        raise CelError("no such overload: optional.ofNonZeroValue")
    return NONE if is_zero(args[0]) else Optional(True, args[0])


def _has_value(args: list[Any], meter: Meter) -> bool:
    if len(args) != 1 or type(args[0]) is not Optional:
        raise no_overload("hasValue", *args)
    return bool(args[0].present)


def _value(args: list[Any], meter: Meter) -> Any:
    if len(args) != 1 or type(args[0]) is not Optional:
        raise no_overload("value", *args)
    if not args[0].present:
        raise CelError("optional.none() dereference")
    return args[0].value


NATIVES: dict[str, Callable[[list[Any], Meter], Any]] = {
    "optional.of": _of,
    "optional.none": _none,
    "optional.ofNonZeroValue": _of_non_zero,
    "hasValue": _has_value,
    "value": _value,
}


def _is_entry(tree: Any) -> bool:
    return isinstance(tree, lark.Tree) and tree.data == "opt_entry"


def has_entries(trees: list[Any]) -> bool:
    """Whether a literal's elements (or map keys) include an optional entry (``?x``)."""
    return any(_is_entry(t) for t in trees)


def _expr(tree: Any) -> Any:
    """An element's or key's expression, without its optional marker."""
    return tree.children[0] if _is_entry(tree) else tree


class OptionalSyntax:
    """The compiler's rules for the optional syntax (mixed into the fast backend's Compiler)."""

    def compile(self, tree: Any) -> Fn:
        raise NotImplementedError

    def _fold(self, fn: Fn, *parts: Fn) -> Fn:
        raise NotImplementedError

    def _member_dot_opt(self, node: lark.Tree[Any]) -> Fn:
        target, field = self.compile(node.children[0]), str(node.children[1])
        return lambda ctx: select(target(ctx), field, ctx)

    def _member_index_opt(self, node: lark.Tree[Any]) -> Fn:
        target, key = self.compile(node.children[0]), self.compile(node.children[1])
        return self._fold(lambda ctx: index(target(ctx), key(ctx), ctx), target, key)

    def _member_index(self, node: lark.Tree[Any]) -> Fn:
        target, key = self.compile(node.children[0]), self.compile(node.children[1])

        def subscript(ctx: Ctx) -> Any:
            value = target(ctx)
            if isinstance(value, LazyVariablesBase):
                name = key(ctx)
                if type(name) is not str:
                    raise no_overload("_[_]", value, name)
                return value.get(name, ctx[1])
            if type(value) is Optional:
                # cel-go: indexing an optional gives an optional (absent if the element is).
                return index(value, key(ctx), ctx)
            return ops.index(value, key(ctx))

        return self._fold(subscript, target, key)

    def _opt_entry(self, node: lark.Tree[Any]) -> Fn:
        def refuse(ctx: Ctx) -> Any:
            raise CelError("an optional entry ('?') is allowed only in list and map literals")

        return refuse

    def _optional_list(self, children: list[Any]) -> Fn:
        return list_entries([(self.compile(_expr(c)), _is_entry(c)) for c in children])

    def _optional_map(self, children: list[Any]) -> Fn:
        """A map literal with optional entries (``{?'k': v}``): an absent value leaves the entry out."""
        keys = children[0::2]
        entries = tuple(
            (self.compile(_expr(k)), self.compile(v), _is_entry(k))
            for k, v in zip(keys, children[1::2], strict=True)
        )

        def build(ctx: Ctx) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for key_fn, value_fn, optional in entries:
                key = key_fn(ctx)
                if type(key) not in (str, int, Uint, bool):
                    raise CelError(f"unsupported key type: {type(key).__name__}")
                value = value_fn(ctx)
                if optional:
                    keep, value = unwrap_entry(key, value)
                    if not keep:
                        continue
                if ops.lookup(out, key) is not ops.MISSING:
                    raise CelError(f"Failed with repeated key: {key}")
                out[key] = value
            return out

        return build
