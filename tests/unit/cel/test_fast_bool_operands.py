"""The generated code leaves out the check that an operand of ``&&``, ``||``, ``!`` or a predicate of
``all``/``exists`` is a bool where the operand can only be one (``has``, ``!``, ``&&``, ``||``,
``all``/``exists``, ``==`` with a string literal, ``in``); everywhere else a non-bool is still the
closures' error."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.cel import CelEvalError
from policyengine.cel.budget import Meter
from policyengine.cel.fast import FastBackend
from policyengine.cel.port import Budget

GENERATED = FastBackend(generate_after=0)
CLOSURES = FastBackend(generate_after=None)


def _names(source: str) -> set[Any]:
    fn = GENERATED.compile(source)._fn  # type: ignore[attr-defined]
    assert fn.__code__.co_filename == "<cel>", source
    return set(fn.__code__.co_consts) | set(fn.__code__.co_names)


def test_bool_operands_are_not_checked_again() -> None:
    assert "_&&_" not in _names("has(object.a) && !has(object.b) && object.c == 'x'")
    assert "_||_" not in _names(
        "object.l.all(x, x == 'a') || 'b' in object.l || (has(object.a) && has(object.b))"
    )
    assert "!_" not in _names("!has(object.a) || !(object.c == 'x')")
    assert "_not_bool" not in _names("object.l.all(c, has(c.a) || c.b == 'x')")


def test_other_operands_are_checked() -> None:
    assert "_&&_" in _names("object.a && object.b")
    assert "!_" in _names("!object.a")
    assert "_not_bool" in _names("object.l.all(c, c.a)")


def _outcome(backend: FastBackend, source: str, data: Any) -> tuple[Any, ...]:
    meter = Meter(Budget(max_cost=10_000, max_seconds=3600.0))
    try:
        value: Any = ("value", backend.compile(source).run({"object": data}, meter))  # type: ignore[attr-defined]
    except CelEvalError as err:
        value = (err.code, str(err))
    return (*value, meter.cost)


@pytest.mark.parametrize(
    "source",
    [
        "has(object.a) && object.a && !has(object.b)",
        "!has(object.a) || !object.a || object.a == 'x'",
        "object.l.all(c, has(c.a) && c.a) || object.l.exists(c, !c.a)",
        "object.l.all(c, c.a == 'x' || 'x' in c.a)",
    ],
)
def test_non_bool_operands_are_still_the_closures_errors(source: str) -> None:
    for data in (
        {"a": 1},
        {"a": True},
        {"a": "x", "b": 1},
        {"l": [{"a": 1}, {"a": "x"}, 3, None]},
        {"l": "x"},
        None,
    ):
        assert _outcome(GENERATED, source, data) == _outcome(CLOSURES, source, data), (source, data)
