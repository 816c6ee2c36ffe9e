"""Values an expression builds in proportion to its input are charged before they are built, in both
backends: ``+`` on strings and lists, ``join``, and the fast backend's conversion of a library call's
arguments. An evaluation over budget ends with budget_exceeded having allocated little, instead of
building the value first (gigabytes, for ``lists.range(100000).map(i, s + s)``)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelEvalError, get_backend
from policyengine.cel.budget import ELEMENT_COST_DIVISOR, concat_cost, sized_cost

MiB = 2**20


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


def traced_peak(run: Callable[[], Any]) -> tuple[int, Any]:
    """Peak memory allocated while ``run`` runs, and its outcome (a value or the CelEvalError)."""
    tracemalloc.start()
    try:
        try:
            outcome = run()
        except CelEvalError as err:
            outcome = err
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


# (expression, bindings, budget, most memory it may allocate): each result would be far larger.
OVER_BUDGET = [
    ("(s + s).size() > 0", {"s": "x" * (4 * MiB)}, 100_000, 1 * MiB),
    ("(s + s + s + s).size() > 0", {"s": "x" * MiB}, 100_000, 1 * MiB),
    ("(l + l).size() > 0", {"l": [0] * 2**18}, 10_000, 1 * MiB),
    ("l.join().size() > 0", {"l": ["x" * 10_000] * 1_000}, 100_000, 1 * MiB),
    ("l.join(',').size() > 0", {"l": ["x" * 10_000] * 1_000}, 100_000, 1 * MiB),
    ("lists.range(5000).map(i, s + s).size() > 0", {"s": "x" * 10_000}, 200_000, 16 * MiB),
    ("lists.range(5000).map(i, s).join().size() > 0", {"s": "x" * 10_000}, 200_000, 16 * MiB),
]


@pytest.mark.parametrize(
    ("expr", "bindings", "max_cost", "most"), OVER_BUDGET, ids=[e[0] for e in OVER_BUDGET]
)
def test_a_value_over_budget_is_refused_before_it_is_built(
    backend: CelBackend, expr: str, bindings: dict[str, Any], max_cost: int, most: int
) -> None:
    activation = backend.bind(bindings)  # converting the bindings is the caller's, not the expression's
    compiled = backend.compile(expr)
    peak, outcome = traced_peak(
        lambda: compiled.evaluate(activation, Budget(max_cost=max_cost, max_seconds=60))
    )
    assert isinstance(outcome, CelEvalError) and outcome.code == "budget_exceeded", outcome
    assert peak <= most, f"{peak / MiB:.1f} MiB allocated before the budget stopped {expr}"


def test_fast_backend_charges_a_library_call_for_converting_its_arguments() -> None:
    """A library call converts its arguments to cel-python values, copying every string: 5,000
    references to one 10 KB string become 50 MB of copies unless the copy is charged first."""
    backend = get_backend("fast")
    compiled = backend.compile("lists.range(5000).map(i, s).distinct().size() > 0")
    activation = backend.bind({"s": "x" * 10_000})
    peak, outcome = traced_peak(
        lambda: compiled.evaluate(activation, Budget(max_cost=200_000, max_seconds=60))
    )
    assert isinstance(outcome, CelEvalError) and outcome.code == "budget_exceeded", outcome
    assert peak <= 16 * MiB
    small = backend.compile("lists.range(50).map(i, s).distinct().size() == 1")
    assert small.evaluate(activation, Budget(max_cost=200_000, max_seconds=60)) is True


@pytest.mark.parametrize(
    ("expr", "size"),
    [("s + s", 2 * 16_000), ("s + s + s", 2 * 16_000 + 3 * 16_000), ("l + l", 2 * 16_000)],
)
def test_both_backends_charge_a_concatenation_by_its_size(backend: CelBackend, expr: str, size: int) -> None:
    """The same threshold in both backends: just under the concatenation's size cost fails, enough
    for it (plus the few units every evaluation spends on its nodes) passes."""
    activation = backend.bind({"s": "x" * 16_000, "l": [0] * 16_000})
    compiled = backend.compile(f"size({expr}) > 0")
    cost = size // ELEMENT_COST_DIVISOR
    with pytest.raises(CelEvalError) as caught:
        compiled.evaluate(activation, Budget(max_cost=cost - 1, max_seconds=60))
    assert caught.value.code == "budget_exceeded"
    assert compiled.evaluate(activation, Budget(max_cost=cost + 200, max_seconds=60)) is True


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("'ab' + 'cd'", "abcd"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("b'a' + b'b'", b"ab"),
        ("1 + 2", 3),
        ("['a', 'b'].join('-') + '!'", "a-b!"),
    ],
)
def test_concatenation_results_are_unchanged(backend: CelBackend, expr: str, expected: Any) -> None:
    assert backend.compile(expr).evaluate(backend.bind({})) == expected


def test_constant_concatenations_fold_at_compile_time() -> None:
    """A long constant concatenation is folded when compiled (its cost is the source's, not charged
    to any request) and gives the same answer in both backends."""
    expr = "size('" + "a" * 100 + "' + '" + "b" * 100 + "') == 200"
    for name in BACKENDS:
        backend = get_backend(name)
        assert backend.compile(expr).evaluate(backend.bind({}), Budget(max_cost=100)) is True


def test_costs_are_computed_without_copying() -> None:
    assert concat_cost("x" * 32, "y" * 32) == 4
    assert concat_cost([0] * 16, [0] * 16) == 2
    assert concat_cost(1, 2) == concat_cost("x" * 64, 2) == 0
    nested = {"a": ["x" * 160, {"b": "y" * 160}]}
    # the map, its key, the list, its two items, the inner map, its key and value
    assert sized_cost(nested, 10**6) == (1 + 1 + 2 + 160 + 1 + 1 + 160) // ELEMENT_COST_DIVISOR
    # The walk stops once past the limit; what it reports is then enough to exceed it.
    assert sized_cost(["x" * 1_000] * 1_000, 100) > 100
    assert sized_cost([["x" * 1_000] * 1_000] * 1_000, 100) < 1_000
