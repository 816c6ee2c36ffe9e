"""cel-go's ``string.format(list)`` (strings extension), with Kubernetes' output for ``%e``.

Clauses: ``%s %d %f %e %b %o %x %X %%`` with an optional precision (``%.3f``). Doubles print with Go's
``%g`` at top level but six decimals inside lists and maps; ``%e`` prints the mantissa, a multiplication sign and a superscript power of ten.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from celpy import celtypes

from policyengine.cel.budget import charge_elements, charge_sized
from policyengine.cel.lib.dispatch import LIST, STRING, Function, LibError, overload, table
from policyengine.cel.lib.numeric import format_double

_VERBS = "sdfeboxX"
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_TYPE_NAMES = {
    celtypes.StringType: "string", celtypes.IntType: "int", celtypes.UintType: "uint",
    celtypes.DoubleType: "double", celtypes.BoolType: "bool", celtypes.BytesType: "bytes",
    celtypes.ListType: "list", celtypes.MapType: "map", type(None): "null_type",
    celtypes.TimestampType: "google.protobuf.Timestamp", celtypes.DurationType: "google.protobuf.Duration",
}  # fmt: skip


def _clauses(fmt: str) -> list[tuple[str, str, int | None]]:
    """Split ``fmt`` into (literal text, verb, precision) triples; verb '' for the trailing text."""
    out: list[tuple[str, str, int | None]] = []
    text: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            text.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(fmt):
            raise LibError("could not parse formatting clause: unexpected end of string")
        if fmt[i] == "%":
            text.append("%")
            i += 1
            continue
        precision = None
        if fmt[i] == ".":
            j = i + 1
            while j < len(fmt) and fmt[j].isdigit():
                j += 1
            if j == i + 1 or j >= len(fmt):
                raise LibError("could not parse formatting clause: error while parsing precision")
            precision = int(fmt[i + 1 : j])
            i = j
        verb = fmt[i]
        if verb not in _VERBS:
            raise LibError(f"could not parse formatting clause: unrecognized formatting clause {verb!r}")
        out.append(("".join(text), verb, precision))
        text = []
        i += 1
    out.append(("".join(text), "", None))
    return out


def check_literal_format(fmt: str) -> None:
    """Raise LibError when a literal format string has a malformed clause (caught at compile time)."""
    _clauses(fmt)


def _is_int(value: Any) -> bool:
    return isinstance(value, celtypes.IntType | celtypes.UintType)


def _timestamp(value: datetime.datetime) -> str:
    text = value.astimezone(datetime.UTC).isoformat()
    return text.replace("+00:00", "Z")


def _duration(value: datetime.timedelta) -> str:
    seconds = value.days * 86400 + value.seconds
    if value.microseconds:
        return f"{seconds}.{value.microseconds:06d}".rstrip("0") + "s"
    nanos = getattr(value, "nanos", 0)
    return f"{seconds}.{nanos:09d}".rstrip("0") + "s" if nanos else f"{seconds}s"


def _string(value: Any, nested: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, celtypes.BoolType):
        return "true" if value else "false"
    if _is_int(value):
        return str(int(value))
    if isinstance(value, celtypes.DoubleType):
        if nested:
            if math.isnan(value) or math.isinf(value):
                return f'"{format_double(float(value))}"'
            return f"{float(value):.6f}"
        return format_double(float(value))
    if isinstance(value, celtypes.StringType):
        return '"' + str(value) + '"' if nested else str(value)
    if isinstance(value, celtypes.BytesType):
        text = bytes(value).decode("utf-8", "replace")
        return f'b"{text}"' if nested else text
    if isinstance(value, celtypes.TimestampType):
        return f'timestamp("{_timestamp(value)}")' if nested else _timestamp(value)
    if isinstance(value, celtypes.DurationType):
        return f'duration("{_duration(value)}")' if nested else _duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(_string(v, True) for v in value) + "]"
    if isinstance(value, dict):
        pairs = sorted((_string(k, True), _string(v, True)) for k, v in value.items())
        return "{" + ", ".join(f"{k}:{v}" for k, v in pairs) + "}"
    if isinstance(value, type):
        return _TYPE_NAMES.get(value, getattr(value, "__name__", "type"))
    return str(value)


def _special_double(value: Any) -> float | None:
    if isinstance(value, celtypes.DoubleType) or _is_int(value):
        return float(value)
    if isinstance(value, celtypes.StringType) and str(value) in ("NaN", "Infinity", "-Infinity"):
        return float(str(value).replace("Infinity", "inf"))
    return None


def _non_finite(number: float) -> str | None:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    return None


def _fixed(value: Any, precision: int | None) -> str:
    number = _special_double(value)
    if number is None:
        raise LibError("error during formatting: fixed-point clause can only be used on doubles")
    charge_elements(precision or 0)
    return _non_finite(number) or f"{number:.{6 if precision is None else precision}f}"


def _scientific(value: Any, precision: int | None) -> str:
    number = _special_double(value)
    if number is None:
        raise LibError("error during formatting: scientific clause can only be used on doubles")
    charge_elements(precision or 0)
    special = _non_finite(number)
    if special:
        return special
    mantissa, _, exponent = f"{number:.{6 if precision is None else precision}e}".partition("e")
    exp = int(exponent)
    power = (("-" if exp < 0 else "") + f"{abs(exp):02d}").translate(_SUPERSCRIPT)
    return f"{mantissa}\u00d710{power}"


def _integer(value: Any, verb: str) -> str:
    if verb == "d":
        if not _is_int(value):
            raise LibError("error during formatting: decimal clause can only be used on integers")
        return str(int(value))
    if verb == "b":
        if not (_is_int(value) or isinstance(value, celtypes.BoolType)):
            raise LibError("error during formatting: only integers and bools can be formatted as binary")
        return format(int(value), "b")
    if verb == "o":
        if not _is_int(value):
            raise LibError("error during formatting: octal clause can only be used on integers")
        return format(int(value), "o")
    if isinstance(value, celtypes.StringType | celtypes.BytesType):
        raw = str(value).encode("utf-8") if isinstance(value, str) else bytes(value)
        text = raw.hex()
    elif _is_int(value):
        text = format(int(value), "x")
    else:
        raise LibError(
            "error during formatting: only integers, byte buffers, and strings can be formatted as hex"
        )
    return text.upper() if verb == "X" else text


def _render(value: Any, verb: str, precision: int | None) -> str:
    if verb == "s":
        return _string(value, False)
    if verb == "f":
        return _fixed(value, precision)
    if verb == "e":
        return _scientific(value, precision)
    return _integer(value, verb)


@overload(STRING, LIST)
def _format(fmt: str, args: list[Any]) -> celtypes.StringType:
    clauses = _clauses(str(fmt))
    used = len(clauses) - 1
    # Rendering copies every string and element of the arguments, nested (a list of a million 10 KB
    # strings is 10 GB of text): charged from their sizes before anything is rendered.
    charge_sized(args)
    out = []
    for index, (text, verb, precision) in enumerate(clauses):
        out.append(text)
        if not verb:
            continue
        if index >= len(args):
            raise LibError(f"index {index} out of range")
        out.append(_render(args[index], verb, precision))
    if len(args) > used:
        raise LibError(f"too many arguments supplied to string.format (expected {used}, got {len(args)})")
    return celtypes.StringType("".join(out))


def functions() -> dict[str, list[Function]]:
    return table(("format", _format))
