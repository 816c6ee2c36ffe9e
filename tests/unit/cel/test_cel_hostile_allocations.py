"""Expressions written to allocate without bound are stopped by the cost budget before they allocate.

Every library call is charged the size of its arguments before it runs, and what it builds beyond them
before building it (``budget.argument_cost`` and the library's own charges), once: the backends no
longer charge a result again after it is built. Each hostile expression below must end with
budget_exceeded from the cost budget, charged past it, with little memory allocated. Nothing is timed:
the deadline (60 s) is a hang guard that fails the test if it, not the cost budget, ends one.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelEvalError, get_backend
from policyengine.cel.budget import ELEMENT_COST_DIVISOR
from policyengine.cel.lib.kyverno import KYVERNO_OBJECTS

MiB = 2**20
HANG_GUARD = 60.0
MAX_COST = 100_000
# What an expression may allocate before the budget stops it; each would build 100 MB to 10 GB.
MOST = 24 * MiB

BINDINGS: dict[str, Any] = {
    "s": "x" * 10_000,
    "l": ["x" * 10_000] * 2_000,  # 20 MB of text, bound by the caller
    "big": "x,y" * 400_000,
    "ctl": "\x01" * 100_000,
    **KYVERNO_OBJECTS,
}

DOUBLE_20 = "[s]" + ".map(x, x + x)" * 20  # 10 KB doubled 20 times: 10 GB

HOSTILE = [
    ("nested join", "lists.range(1000).map(i, lists.range(1000).map(j, s).join()).join().size() > 0"),
    ("join of a bound list", "lists.range(1000).map(i, l.join(',')).size() > 0"),
    ("string doubling with +", f"{DOUBLE_20}[0].size() > 0"),
    ("repeated replace", "s.replace('x', s).replace('x', s).size() > 0"),
    ("replace of the empty string", "s.replace('', s).size() > 0"),
    ("split of a huge string into characters", "big.split('').size() > 0"),
    ("split of a huge string", "lists.range(1000).map(i, big.split(',')).size() > 0"),
    ("format of a huge list", "'%s'.format([l]).size() > 0"),
    ("format of huge lists, repeatedly", "lists.range(1000).map(i, '%s %s'.format([l, l])).size() > 0"),
    ("format with a huge precision", "'%.999999999f'.format([1.0]).size() > 0"),
    ("json.marshal of a huge list", "json.marshal(l).size() > 0"),
    ("json.marshal, repeatedly", "lists.range(1000).map(i, json.marshal([s, s, s])).size() > 0"),
    ("quote of control characters", "lists.range(1000).map(i, strings.quote(ctl)).size() > 0"),
    ("case change kept per element", "lists.range(100000).map(i, s.upperAscii()).size() > 0"),
    ("bytes copy kept per element", "lists.range(100000).map(i, bytes(s)).size() > 0"),
    ("findAll of a huge string", "lists.range(1000).map(i, big.findAll('x')).size() > 0"),
    ("sort of a bound list, repeatedly", "lists.range(100000).map(i, l.sort()).size() > 0"),
    ("flatten of a bound list of lists", "lists.range(1000).map(i, [l, l, l, l, l].flatten()).size() > 0"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


@pytest.fixture(scope="module")
def activation(backend: CelBackend) -> Any:
    return backend.bind(BINDINGS)


@pytest.mark.parametrize(("name", "expr"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_allocation_is_stopped_by_the_cost_budget(
    backend: CelBackend, activation: Any, name: str, expr: str
) -> None:
    compiled = backend.compile(expr)
    tracemalloc.start()
    try:
        with pytest.raises(CelEvalError) as caught:
            compiled.evaluate(activation, Budget(max_cost=MAX_COST, max_seconds=HANG_GUARD))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = caught.value
    assert err.code == "budget_exceeded", err
    assert "cost budget" in str(err), f"{name} ran into the {HANG_GUARD} s hang guard: {err}"
    assert err.cost is not None and err.cost > MAX_COST
    assert peak < MOST, f"{name}: {peak / MiB:.0f} MiB allocated before the budget stopped it"


def within(backend: CelBackend, expr: str, bindings: dict[str, Any], max_cost: int) -> bool:
    """Whether ``expr`` evaluates (to true) within ``max_cost``; False when the cost budget stops it."""
    try:
        result = backend.compile(expr).evaluate(
            backend.bind(bindings), Budget(max_cost=max_cost, max_seconds=HANG_GUARD)
        )
    except CelEvalError as err:
        assert err.code == "budget_exceeded" and "cost budget" in str(err), err
        return False
    assert result is True
    return True


# A library call on a 16,000-character string, or a list of 10 strings of 1,600: what it builds.
TEXT = "x" * 16_000
PARTS = ["y" * 1_600] * 10
BUILT = 16_000 // ELEMENT_COST_DIVISOR


@pytest.mark.parametrize(
    ("expr", "reference_cost", "fast_cost"),
    [
        # the call's argument (the text), once; the fast backend also converts (copies) the argument
        ("size(t.upperAscii()) > 0", BUILT, 2 * BUILT),
        ("size(t.replace('x', 'y')) > 0", BUILT, 2 * BUILT),
        # join builds 16,000 characters from a list of 10: charged for the result, not again after it
        ("size(p.join()) > 0", BUILT, 2 * BUILT),
    ],
)
def test_a_call_is_paid_for_once(backend: CelBackend, expr: str, reference_cost: int, fast_cost: int) -> None:
    """Just under the call's cost fails, that cost plus the few units of the expression's nodes
    passes: the result is not charged a second time after it is built (it was, in both backends)."""
    cost = fast_cost if backend.name == "fast" else reference_cost
    bindings = {"t": TEXT, "p": PARTS}
    assert not within(backend, expr, bindings, cost - 1)
    assert within(backend, expr, bindings, cost + 50)
