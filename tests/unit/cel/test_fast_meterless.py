"""The fast backend evaluates expressions that can never charge a meter without arming one, and every
other expression under its budget as before: the shapes allowed are few and listed, anything that can
cost (a call, a macro, ``+``, an index, the lazy ``variables``, optional syntax) is metered, and a meter
charged by an expression let through by mistake stops it as over budget instead of running unmetered.

Nothing here measures time: the time budget runs on a clock the test controls (``ticking_clock``),
and an expression that arms no meter is one that never reads it.
"""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.cel import Budget, CelEvalError, get_backend
from policyengine.cel.fast import UNCHARGEABLE, FastBackend, FastExpr
from policyengine.cel.fast.meterless import never_charges
from policyengine.cel.frontend import Frontend
from policyengine.cel.library import known_names, type_identifiers

fast = get_backend("fast")
reference = get_backend("reference")

FREE = [
    "object.spec.replicas <= 50",
    "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    "has(object.metadata.labels) && 'owner' in object.metadata.labels",
    "object.metadata.name == 'x' ? object.spec.replicas : -1",
    "object.kind in ['Pod', 'Deployment']",
    "object.spec == object.spec",
    "object.spec.replicas != 3 && object.missing.field",
    "int",
]
CHARGING = [
    "size(object.spec.containers) > 0",  # a call: its argument's size is charged
    "object.spec.containers.all(c, c.name != '')",  # a macro: every iteration is charged
    "object.metadata.name + 'x'",  # a concatenation is charged by its size
    "object.metadata.labels['owner'] == 'a'",  # an index
    "variables.x == 1",  # a lazy variable is computed, and charged, on first use
    "has(variables.x)",
    "object.?metadata.name == 'x'",  # optional syntax
    "{'a': object.kind}.a == 'Pod'",  # a map literal
    "object.metadata.name.startsWith('x')",  # a method
    "lists.range(100000).map(i, object.metadata.name).join() != ''",
]
REQUESTS: list[Any] = [
    {"kind": "Deployment", "metadata": {"name": "x", "labels": {"owner": "a"}}, "spec": {"replicas": 2}},
    {"kind": "Pod", "metadata": {"name": "y"}, "spec": {"replicas": 99, "hostNetwork": True}},
    {"kind": 7, "metadata": [], "spec": "text"},
    {},
]


def _tree(source: str) -> Any:
    names = known_names(fast._library.table)  # type: ignore[attr-defined]
    return Frontend(names, frozenset(dict(type_identifiers()))).parse(source, None)


@pytest.mark.parametrize("source", FREE)
def test_expressions_made_of_uncharged_shapes_run_without_a_meter(source: str) -> None:
    assert never_charges(_tree(source))
    assert isinstance(fast.compile(source), FastExpr)
    assert fast.compile(source).meterless  # type: ignore[attr-defined]


@pytest.mark.parametrize("source", CHARGING)
def test_anything_that_can_cost_keeps_its_meter(source: str) -> None:
    assert not never_charges(_tree(source))
    assert not fast.compile(source).meterless  # type: ignore[attr-defined]


def _outcome(compiled: Any, activation: Any) -> Any:
    try:
        return compiled.evaluate(activation)
    except CelEvalError as err:
        return ("error", err.code)


@pytest.mark.parametrize("source", FREE[:-1])
@pytest.mark.parametrize("obj", REQUESTS)
def test_a_meterless_expression_decides_as_it_does_under_a_meter(source: str, obj: Any) -> None:
    compiled, metered = fast.compile(source), FastBackend(generate_after=None).compile(source)
    metered.meterless = False  # type: ignore[attr-defined]
    want = _outcome(metered, fast.bind({"object": obj}))
    if obj is not REQUESTS[2] and obj is not REQUESTS[3]:  # where cel-python agrees on has()
        assert _outcome(reference.compile(source), reference.bind({"object": obj})) == want
    for _ in range(3):  # the closures first, then the generated function
        assert _outcome(compiled, fast.bind({"object": obj})) == want


def test_a_meterless_expression_never_reads_the_clock(ticking_clock: list[int]) -> None:
    compiled, metered = fast.compile(FREE[1]), fast.compile("size(object.metadata.name) > 0")
    activation = fast.bind({"object": REQUESTS[1]})
    before = ticking_clock[0]
    for _ in range(5):
        assert compiled.evaluate(activation) is False
    assert ticking_clock[0] == before  # no meter was armed: its deadline is read from the clock
    metered.evaluate(activation)
    assert ticking_clock[0] > before  # a metered one arms its meter


def test_the_shared_meter_of_meterless_expressions_stops_whatever_charges_it() -> None:
    # Were an expression that charges ever marked meterless, it would stop as over budget, not run
    # unmetered: here a concatenation of two 1 MB strings, forced onto the meterless path.
    compiled = fast.compile("a + b == ''")
    assert not compiled.meterless  # type: ignore[attr-defined]
    forced = FastExpr(compiled.source, compiled._fn, 0, meterless=True)  # type: ignore[attr-defined]
    with pytest.raises(CelEvalError) as err:
        forced.evaluate(fast.bind({"a": "x" * 1_000_000, "b": "y" * 1_000_000}))
    assert err.value.code == "budget_exceeded"
    with pytest.raises(Exception) as charged:
        UNCHARGEABLE.charge(1)
    assert "budget" in str(charged.value)
    assert UNCHARGEABLE.cost == 0  # shared, and never changed


def test_a_hostile_expression_is_still_stopped_by_its_budget(ticking_clock: list[int]) -> None:
    hostile = fast.compile("lists.range(100000).map(i, s).join() != ''")
    assert not hostile.meterless  # type: ignore[attr-defined]
    with pytest.raises(CelEvalError) as err:
        hostile.evaluate(fast.bind({"s": "x" * 10_000}), Budget(max_cost=100_000, max_seconds=60.0))
    assert err.value.code == "budget_exceeded"
    assert err.value.cost is not None and err.value.cost > 100_000
