"""A quick verdict on a document against one of the JSON Schemas shipped in ``policyengine/schemas``,
for the keywords those schemas use (Draft 2020-12 meanings): valid, invalid, or not sure.

Importing ``jsonschema`` costs a command a twentieth of a second before its first document; most
documents (every bundled pack, a correct config) are valid, and saying so needs none of it. Only
"valid" is ever acted on (``policyengine.schema`` then has no problem to report); "invalid" and "not
sure" leave the document to ``jsonschema``, which says what is wrong. So every rule here is one that
cannot call valid what jsonschema refuses: a keyword not known here, a ``$ref`` not resolved here, or an
``enum``/``const``/``uniqueItems`` over anything but strings is "not sure".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sized
from functools import cache
from importlib import resources
from typing import Any

BASE = "https://policyengine.io/schemas/"
# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}
Verdict = bool | None  # True: valid; False: invalid; None: not sure


@cache
def _schema(name: str) -> Any:
    return json.loads(resources.files("policyengine.schemas").joinpath(name).read_text("utf-8"))


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def verdict(instance: Any, name: str) -> Verdict:
    """Whether ``instance`` is valid against schema file ``name``: True, False, or None (not sure)."""
    try:
        return _check(instance, _schema(name), name, 0)
    except RecursionError:
        return None


def _all(verdicts: Any) -> Verdict:
    """True when every verdict is; False as soon as one is."""
    sure = True
    for one in verdicts:
        if one is False:
            return False
        sure = sure and one is True
    return True if sure else None


def _check(value: Any, node: Any, name: str, depth: int) -> Verdict:
    if node is True or node == {}:
        return True
    if node is False:
        return False
    if not isinstance(node, Mapping) or depth > 64:
        return None
    return _all(_keyword(key, arg, value, node, name, depth) for key, arg in node.items())


def _keyword(key: str, arg: Any, value: Any, node: Mapping[str, Any], name: str, depth: int) -> Verdict:
    if key in _ANNOTATIONS:
        return True
    check = _KEYWORDS.get(key)
    return None if check is None else check(arg, value, node, name, depth + 1)


def _ref(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    if not isinstance(arg, str):
        return None
    file, _, pointer = arg.partition("#")
    file = file.removeprefix(BASE) or name
    if "/" in file or not file.endswith(".json") or not (pointer == "" or pointer.startswith("/$defs/")):
        return None
    target = _schema(file)
    for part in pointer.split("/")[1:]:
        if not isinstance(target, Mapping) or part not in target:
            return None
        target = target[part]
    return _check(value, target, file, depth)


def _type(arg: Any, value: Any, *_: Any) -> Verdict:
    names = arg if isinstance(arg, list) else [arg]
    if not all(n in _TYPES for n in names):
        return None
    return any(_TYPES[n](value) for n in names)


def _properties(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    if not isinstance(value, dict):
        return True
    return _all(_check(value[k], sub, name, depth) for k, sub in arg.items() if k in value)


def _additional(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    if not isinstance(value, dict):
        return True
    if "patternProperties" in node:
        return None
    named = node.get("properties", {})
    return _all(_check(v, arg, name, depth) for k, v in value.items() if k not in named)


def _items(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    if not isinstance(value, list):
        return True
    if "prefixItems" in node:
        return None
    return _all(_check(v, arg, name, depth) for v in value)


def _names(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    return _all(_check(k, arg, name, depth) for k in value) if isinstance(value, dict) else True


def _enum(arg: Any, value: Any, *_: Any) -> Verdict:
    if isinstance(value, str) and all(isinstance(a, str) for a in arg):
        return value in arg
    return None  # jsonschema's equality (1 is not true, [1] is [1.0]) is not repeated here


def _const(arg: Any, value: Any, *_: Any) -> Verdict:
    return value == arg if isinstance(value, str) and isinstance(arg, str) else None


def _unique(arg: Any, value: Any, *_: Any) -> Verdict:
    if arg is not True or not isinstance(value, list):
        return True if arg is False or not isinstance(value, list) else None
    return len(set(value)) == len(value) if all(isinstance(v, str) for v in value) else None


def _sized(kind: type[Sized], compare: Callable[[int, Any], bool]) -> Callable[..., Verdict]:
    def check(arg: Any, value: Any, *_: Any) -> Verdict:
        if not isinstance(arg, int) or isinstance(arg, bool):
            return None
        return compare(len(value), arg) if isinstance(value, kind) else True

    return check


def _minimum(arg: Any, value: Any, *_: Any) -> Verdict:
    if not _TYPES["number"](arg):
        return None
    return bool(value >= arg) if _TYPES["number"](value) else True


def _required(arg: Any, value: Any, *_: Any) -> Verdict:
    return all(k in value for k in arg) if isinstance(value, dict) else True


def _pattern_kw(arg: Any, value: Any, *_: Any) -> Verdict:
    return _pattern(arg).search(value) is not None if isinstance(value, str) else True


def _all_of(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    return _all(_check(value, sub, name, depth) for sub in arg)


def _any_of(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    found = [_check(value, sub, name, depth) for sub in arg]
    return True if True in found else (False if all(f is False for f in found) else None)


def _one_of(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    found = [_check(value, sub, name, depth) for sub in arg]
    return None if None in found else found.count(True) == 1


def _not(arg: Any, value: Any, node: Any, name: str, depth: int) -> Verdict:
    found = _check(value, arg, name, depth)
    return None if found is None else not found


_KEYWORDS: dict[str, Callable[..., Verdict]] = {
    "$ref": _ref,
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "items": _items,
    "propertyNames": _names,
    "required": _required,
    "enum": _enum,
    "const": _const,
    "uniqueItems": _unique,
    "minLength": _sized(str, lambda n, a: n >= a),
    "maxLength": _sized(str, lambda n, a: n <= a),
    "minItems": _sized(list, lambda n, a: n >= a),
    "maxItems": _sized(list, lambda n, a: n <= a),
    "minProperties": _sized(dict, lambda n, a: n >= a),
    "maxProperties": _sized(dict, lambda n, a: n <= a),
    "minimum": _minimum,
    "pattern": _pattern_kw,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
}
