"""Every evaluation is bounded: runaway expressions end with budget_exceeded, promptly."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelEvalError, get_backend


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


RUNAWAYS = [
    "lists.range(100000).all(i, lists.range(100000).all(j, true))",
    "lists.range(100000).map(i, lists.range(100000).filter(j, j > i)).size() > 0",
    "lists.range(1000000000).size() > 0",
    "s.replace('', s).replace('', s).size() > 0",
    "lists.range(100000).map(i, s).join().size() > 0",
    "lists.range(3000).exists(i, lists.range(3000).exists(j, i + j < 0))",
]


# What a runaway may allocate before its budget stops it. Each charges what it builds before building
# it, so this holds whichever budget (cost or time) ends it; the join once built ~1 GB of copies first.
RUNAWAY_MEMORY = 128 * 2**20


@pytest.mark.parametrize("expr", RUNAWAYS)
def test_runaway_expression_ends_with_budget_exceeded(backend: CelBackend, expr: str) -> None:
    activation = backend.bind({"s": "x" * 10_000})
    compiled = backend.compile(expr)
    tracemalloc.start()
    try:
        with pytest.raises(CelEvalError) as caught:
            compiled.evaluate(activation, Budget(max_cost=1_000_000, max_seconds=0.5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.code == "budget_exceeded"
    assert peak < RUNAWAY_MEMORY, f"{peak / 2**20:.0f} MiB allocated before the budget stopped it"


def test_join_of_a_large_list_is_charged_before_it_is_built() -> None:
    """The runaway join above, with only the cost budget in play (the deadline is a hang guard): the
    fast backend's map fits the budget, so the join is reached, and it is refused before its 1 GB of
    copies is made. (The reference backend's map alone exhausts this budget; the same join on both
    backends is in test_cel_sized_costs.)"""
    backend = get_backend("fast")
    compiled = backend.compile("lists.range(100000).map(i, s).join().size() > 0")
    activation = backend.bind({"s": "x" * 10_000})
    tracemalloc.start()
    try:
        with pytest.raises(CelEvalError, match="cost budget") as caught:
            compiled.evaluate(activation, Budget(max_cost=1_000_000, max_seconds=60.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.code == "budget_exceeded"
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the budget stopped the join"


def test_cost_budget_counts_comprehension_iterations(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(1000).all(i, true)")
    activation = backend.bind({})
    assert compiled.evaluate(activation, Budget(max_cost=100_000, max_seconds=30.0)) is True
    with pytest.raises(CelEvalError, match="cost budget") as caught:
        compiled.evaluate(activation, Budget(max_cost=1_000))
    assert caught.value.code == "budget_exceeded"


def test_time_budget_stops_a_long_evaluation(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(100000).all(i, lists.range(100).all(j, true))")
    # The cost budget is out of reach: only the deadline can have ended it.
    with pytest.raises(CelEvalError, match="time budget") as caught:
        compiled.evaluate(backend.bind({}), Budget(max_cost=10**12, max_seconds=0.2))
    assert caught.value.code == "budget_exceeded"


def test_exists_short_circuits(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(100000).exists(i, i == 1)")
    assert compiled.evaluate(backend.bind({}), Budget(max_cost=200_000, max_seconds=30.0)) is True


def test_budgets_are_per_evaluation_and_per_thread(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(300).all(i, i >= 0)")
    activation = backend.bind({})
    # A generous clock: the point is that one thread's spending never counts against another's cost.
    budget = Budget(max_cost=20_000, max_seconds=60.0)
    results: list[object] = []

    def work() -> None:
        for _ in range(20):
            try:
                results.append(compiled.evaluate(activation, budget))
            except CelEvalError as err:
                results.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 80


def test_ordinary_errors_are_eval_errors(backend: CelBackend) -> None:
    with pytest.raises(CelEvalError) as caught:
        backend.compile("1 / 0 == 1").evaluate(backend.bind({}))
    assert caught.value.code == "eval_error"
