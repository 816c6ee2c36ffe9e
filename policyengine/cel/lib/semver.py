"""The Kubernetes semver library (version 1): ``semver()``, ``isSemver()`` and the Semver methods.

Strict semver 2.0.0 as blang/semver parses it; with ``normalize`` (``semver(s, true)``) a leading ``v`` is
dropped, leading zeros removed and a missing minor or patch filled with 0.
"""

from __future__ import annotations

import re
from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import BOOL, STRING, Function, LibError, overload, table

_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_STRICT = re.compile(
    rf"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)


class Semver:
    """A CEL ``kubernetes.Semver``; equality and order ignore build metadata, as blang/semver does."""

    __slots__ = ("build", "major", "minor", "patch", "pre")

    def __init__(self, major: int, minor: int, patch: int, pre: tuple[str, ...], build: str) -> None:
        self.major, self.minor, self.patch, self.pre, self.build = major, minor, patch, pre, build

    def _key(self) -> tuple[Any, ...]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, not self.pre, pre)

    def compare(self, other: Semver) -> int:
        a, b = self._key(), other._key()
        return (a > b) - (a < b)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Semver) and self.compare(other) == 0

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        return text + (f"+{self.build}" if self.build else "")


def _normalize(text: str) -> str:
    text = text.removeprefix("v")
    cut = min((i for i in (text.find("-"), text.find("+")) if i >= 0), default=len(text))
    core, rest = text[:cut], text[cut:]
    parts = core.split(".")
    if len(parts) > 3 or not all(p.isdigit() and p.isascii() for p in parts):
        return text
    if len(parts) < 3 and rest:
        return text
    numbers = [str(int(p)) for p in parts] + ["0"] * (3 - len(parts))
    return ".".join(numbers) + rest


def parse_semver(text: str, normalize: bool = False) -> Semver:
    if normalize:
        text = _normalize(text)
    match = _STRICT.match(text)
    if not match:
        if text.count(".") < 2:
            raise LibError("No Major.Minor.Patch elements found")
        raise LibError("invalid semantic version")
    pre = tuple(match.group(4).split(".")) if match.group(4) else ()
    return Semver(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre, match.group(5) or "")


@overload(STRING)
def _semver(text: str) -> Semver:
    return parse_semver(str(text))


@overload(STRING, BOOL)
def _semver_normalized(text: str, normalize: bool) -> Semver:
    return parse_semver(str(text), bool(normalize))


def _valid(text: str, normalize: bool) -> celtypes.BoolType:
    try:
        parse_semver(text, normalize)
    except LibError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


@overload(STRING)
def _is_semver(text: str) -> celtypes.BoolType:
    return _valid(str(text), False)


@overload(STRING, BOOL)
def _is_semver_normalized(text: str, normalize: int) -> celtypes.BoolType:
    return _valid(str(text), bool(normalize))


@overload(Semver, Semver)
def _compare_to(left: Semver, right: Semver) -> celtypes.IntType:
    return celtypes.IntType(left.compare(right))


@overload(Semver, Semver)
def _is_less_than(left: Semver, right: Semver) -> celtypes.BoolType:
    return celtypes.BoolType(left.compare(right) < 0)


@overload(Semver, Semver)
def _is_greater_than(left: Semver, right: Semver) -> celtypes.BoolType:
    return celtypes.BoolType(left.compare(right) > 0)


@overload(Semver)
def _major(v: Semver) -> celtypes.IntType:
    return celtypes.IntType(v.major)


@overload(Semver)
def _minor(v: Semver) -> celtypes.IntType:
    return celtypes.IntType(v.minor)


@overload(Semver)
def _patch(v: Semver) -> celtypes.IntType:
    return celtypes.IntType(v.patch)


def functions() -> dict[str, list[Function]]:
    return table(
        ("semver", _semver),
        ("semver", _semver_normalized),
        ("isSemver", _is_semver),
        ("isSemver", _is_semver_normalized),
        ("compareTo", _compare_to),
        ("isLessThan", _is_less_than),
        ("isGreaterThan", _is_greater_than),
        ("major", _major),
        ("minor", _minor),
        ("patch", _patch),
    )
