"""Kyverno's CEL libraries that need no cluster, with their Kyverno names and signatures (kyverno/sdk
``extensions/cel/libs``): ``json.unmarshal``/``json.marshal``, ``yaml.parse``, ``sha1``/``sha256``/``md5``
(and ``hash.*``), ``math.round``, ``listObjToMap`` (and ``transform.listObjToMap``), ``time.toCron`` and
``time.truncate``, ``parseServiceAccount`` (and ``user.parseServiceAccount``).

Each reads attacker-controlled text, so each is bounded: input of at most ``MAX_INPUT`` characters, JSON
and YAML at most ``MAX_DEPTH`` levels deep and ``MAX_NODES`` values (a YAML alias counts as the nodes it
repeats), the work charged to the evaluation's cost budget.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from typing import Any

import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel as to_cel

from policyengine.cel.budget import charge, charge_elements, charge_sized
from policyengine.cel.lib.dispatch import ANY, DOUBLE, INT, LIST, STRING, Function, LibError, overload, table

# The objects Kyverno's library calls are made on (``json.unmarshal(s)``): bound for every request.
KYVERNO_OBJECTS: dict[str, Any] = {"json": {}, "yaml": {}, "resource": {}}
MAX_INPUT = 1 << 20  # characters of JSON/YAML one call parses
MAX_DEPTH = 64
MAX_NODES = 100_000


def _bounded_text(name: str, text: str) -> str:
    if len(text) > MAX_INPUT:
        raise LibError(f"{name}: input of {len(text)} characters is over the limit of {MAX_INPUT}")
    return str(text)  # the call paid for its characters (the library charges its arguments' size)


def _check_tree(name: str, value: Any) -> int:
    """Refuse a value deeper than MAX_DEPTH or larger than MAX_NODES, counting shared parts each time;
    the number of values it holds."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise LibError(f"{name}: more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise LibError(f"{name}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return count


def _plain(name: str, value: Any) -> Any:
    """A parsed value as JSON data: map keys must be strings, timestamps become text (as Go's YAML does)."""
    if isinstance(value, dict):
        return {str(k): _plain(name, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(name, v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return value


@overload(ANY, STRING)
def _json_unmarshal(_json: Any, text: str) -> Any:
    text = _bounded_text("json.unmarshal", text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise LibError(f"json.unmarshal: {str(err)[:200]}") from None
    # Each value becomes a CEL value: charged like a list element (one unit) before converting.
    charge(_check_tree("json.unmarshal", value))
    return to_cel(value)


@overload(ANY, ANY)
def _json_marshal(_json: Any, value: Any) -> celtypes.StringType:
    _check_tree("json.marshal", value)
    # The text is as long as the value's strings and elements, nested: charged before it is written.
    charge_sized(value)
    try:
        text = json.dumps(_to_json(value), separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise LibError(f"json.marshal: {err}") from None
    return celtypes.StringType(text)


@overload(ANY, STRING)
def _yaml_parse(_yaml: Any, text: str) -> Any:
    text = _bounded_text("yaml.parse", text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_nodes(node)
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LibError(f"yaml.parse: {str(err).splitlines()[0][:200]}") from None
    except RecursionError:
        raise LibError(f"yaml.parse: nested deeper than {MAX_DEPTH} levels") from None
    value = _plain("yaml.parse", value)
    charge(_check_tree("yaml.parse", value))
    return to_cel(value)


def _check_nodes(node: Any) -> None:
    # Before constructing: aliases repeat a node, so a few lines can stand for billions of values.
    count = 0
    stack: list[tuple[Any, int]] = [(node, 1)] if node is not None else []
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise LibError(f"yaml.parse: more than {MAX_NODES} values (aliases counted each time)")
        if depth > MAX_DEPTH:
            raise LibError(f"yaml.parse: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in item.value)
        elif isinstance(item, yaml.MappingNode):
            stack.extend((part, depth + 1) for pair in item.value for part in pair)


def _to_json(value: Any) -> Any:
    """A CEL value as JSON data (bool before int: BoolType subclasses int)."""
    if value is None or isinstance(value, bool | celtypes.BoolType):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    raise LibError(f"json.marshal: a {type(value).__name__} is not JSON")


def _digest(name: str, algorithm: str) -> Function:
    @overload(STRING)
    def digest(text: str) -> celtypes.StringType:
        # The call paid for hashing the text (the library charges its arguments' size).
        return celtypes.StringType(
            hashlib.new(algorithm, str(text).encode("utf-8", "surrogatepass")).hexdigest()
        )

    digest.__name__ = name
    return digest


@overload(DOUBLE, INT)
def _round(value: float, precision: int) -> celtypes.DoubleType:
    # Go's math.Round(v*10^p)/10^p: halves away from zero.
    if not -400 <= int(precision) <= 400:
        raise LibError(f"math.round: precision {int(precision)} is out of range")
    shift = math.pow(10, int(precision))
    scaled = float(value) * shift
    if not math.isfinite(scaled):
        return celtypes.DoubleType(float(value))
    rounded = math.floor(abs(scaled) + 0.5) * (1 if scaled >= 0 else -1)
    return celtypes.DoubleType(rounded / shift)


@overload(LIST, LIST, STRING, STRING)
def _list_obj_to_map(keys: list[Any], values: list[Any], key_name: str, value_name: str) -> Any:
    if len(keys) != len(values):
        raise LibError(
            f"listObjToMap must take lists of equal length. list1: {len(keys)}, list2: {len(values)}"
        )
    charge_elements(len(keys))
    out: dict[Any, Any] = {}
    for entry, other in zip(keys, values, strict=True):
        if not isinstance(entry, dict):
            raise LibError("listObjToMap: an entry of the key object list is not a map")
        key = entry.get(celtypes.StringType(key_name))
        if not isinstance(key, celtypes.StringType):
            raise LibError("the passed key name cannot be handled as a string in the key object list")
        if not isinstance(other, dict):
            raise LibError("object cannot be handled as a map string to any in the value object list")
        out[key] = other.get(celtypes.StringType(value_name))
    return celtypes.MapType(out)


@overload(celtypes.TimestampType)
def _to_cron(ts: datetime.datetime) -> celtypes.StringType:
    # Go's Weekday: Sunday is 0.
    weekday = (ts.weekday() + 1) % 7
    return celtypes.StringType(f"{ts.minute} {ts.hour} {ts.day} {ts.month} {weekday}")


@overload(celtypes.TimestampType, celtypes.DurationType)
def _truncate(ts: datetime.datetime, duration: datetime.timedelta) -> celtypes.TimestampType:
    # Go's Time.Truncate: rounds down to a multiple of d since the zero time; d <= 0 returns t unchanged.
    step = duration // datetime.timedelta(microseconds=1)
    if step <= 0:
        return celtypes.TimestampType(ts)
    zero = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)
    since = (ts - zero) // datetime.timedelta(microseconds=1)
    return celtypes.TimestampType(zero + datetime.timedelta(microseconds=since - since % step))


@overload(STRING)
def _parse_service_account(user: str) -> Any:
    """Kyverno's ``user.ServiceAccount`` (Go field names): ``system:serviceaccount:<ns>:<name>``, else empty."""
    namespace = name = ""
    prefix = "system:serviceaccount:"
    if user.startswith(prefix) and ":" in user[len(prefix) :]:
        namespace, _, name = user[len(prefix) :].partition(":")
    return celtypes.MapType({celtypes.StringType("Name"): celtypes.StringType(name),
                             celtypes.StringType("Namespace"): celtypes.StringType(namespace)})  # fmt: skip


def functions() -> dict[str, list[Function]]:
    sha1, sha256, md5 = _digest("sha1", "sha1"), _digest("sha256", "sha256"), _digest("md5", "md5")
    return table(
        ("unmarshal", _json_unmarshal),
        ("marshal", _json_marshal),
        ("parse", _yaml_parse),
        ("sha1", sha1),
        ("sha256", sha256),
        ("md5", md5),
        ("hash.sha1", sha1),
        ("hash.sha256", sha256),
        ("hash.md5", md5),
        ("math.round", _round),
        ("listObjToMap", _list_obj_to_map),
        ("transform.listObjToMap", _list_obj_to_map),
        ("time.toCron", _to_cron),
        ("time.truncate", _truncate),
        ("parseServiceAccount", _parse_service_account),
        ("user.parseServiceAccount", _parse_service_account),
    )
