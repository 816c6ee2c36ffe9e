"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) parsed once, exactly and within bounds.

Both the workload view (GPU counts) and the CEL ``quantity()`` library read quantities from requests, so
both use this parser. It follows ``k8s.io/apimachinery`` ``resource.ParseQuantity``: the same grammar and
error messages, values kept down to nano units (a finer value is rounded away from zero) and a binary-SI
value capped at 2^63-1. Kubernetes never materialises ``10**exponent``; this parser must not either, so a
decimal exponent beyond ±``MAX_EXPONENT`` and a number with more than ``MAX_DIGITS`` integer digits are
out of range (``QuantityError``) instead of work proportional to the exponent. Digits below a nano are
read only to decide the rounding, never converted, so a long fraction costs a scan and nothing more.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# Quantities beyond these are refused: far past any real resource, and small enough that the exact
# value (at most ~2,030 digits) stays within Python's int/str conversion limit and costs microseconds.
MAX_EXPONENT = 1000
MAX_DIGITS = 1000
INT64_MAX = 2**63 - 1

_SHAPE = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")
_EXPONENT = re.compile(r"[eE]([-+]?[0-9]+)")
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
# 2**60 < 10**19: below 10**-(9 + 19) of a unit, a binary multiple still stays under one nano.
_BINARY_GUARD_DIGITS = 19

SHAPE_MESSAGE = r"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity, or one beyond the bounds above; the message says which."""


class QuantityRangeError(QuantityError):
    """A well-formed quantity too large (or too finely scaled) to read within the bounds above."""


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity, rounded to nano units as Kubernetes rounds it."""
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise QuantityError(SHAPE_MESSAGE)
    number = _NUMBER.fullmatch(shape.group(1))
    if number is None or not (number.group(2) or number.group(3)):
        raise QuantityError("quantities must match the regular expression")
    decimal, binary = _scale(shape.group(2))
    whole = number.group(2).lstrip("0")
    if len(whole) > MAX_DIGITS:
        raise QuantityRangeError(f"more than {MAX_DIGITS} digits")
    value = _rounded(whole, (number.group(3) or "").rstrip("0"), decimal, binary)
    if binary and value > INT64_MAX:
        value = Fraction(INT64_MAX)  # Kubernetes caps a binary-SI quantity, silently
    return -value if number.group(1) == "-" else value


def _scale(suffix: str) -> tuple[int, int]:
    """(power of ten, power of two) that the suffix multiplies by."""
    if suffix in _DECIMAL_SI:
        return _DECIMAL_SI[suffix], 0
    if suffix in _BINARY_SI:
        return 0, _BINARY_SI[suffix]
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None:
        raise QuantityError("unable to parse quantity's suffix")
    sign, digits = exponent.group(1)[:1], exponent.group(1).lstrip("+-").lstrip("0")
    # A 100,000-digit exponent is refused on its length, before int() would have to read it.
    power = int(digits) if len(digits) <= len(str(MAX_EXPONENT)) else MAX_EXPONENT + 1
    power = -power if sign == "-" else power
    if abs(power) > MAX_EXPONENT:
        raise QuantityRangeError(f"exponent beyond ±{MAX_EXPONENT}")
    return power, 0


def _rounded(whole: str, fraction: str, decimal: int, binary: int) -> Fraction:
    """|value| rounded up to a whole number of nanos, reading only the fraction digits that matter."""
    if not fraction and decimal >= -9:  # the usual "2", "500m", "4Gi": exact, no rounding to do
        digits = int(whole) if whole else 0
        return Fraction(digits << binary) * 10**decimal if decimal >= 0 else Fraction(digits, 10**-decimal)
    keep = max(0, 9 + decimal + (_BINARY_GUARD_DIGITS if binary else 0))
    kept, below = fraction[:keep], fraction[keep:]
    digits = int(whole + kept) if whole or kept else 0
    value = Fraction(digits) * Fraction(10) ** (decimal - len(kept)) * 2**binary
    nanos = value * 10**9
    if below.count("0") != len(below) and nanos.denominator == 1:
        nanos += 1  # the unread digits are below one nano but not zero: round away from zero
    return Fraction(math.ceil(nanos), 10**9)
