"""Every evaluation is bounded: runaway expressions end with budget_exceeded, promptly."""

from __future__ import annotations

import threading
import time

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


@pytest.mark.parametrize("expr", RUNAWAYS)
def test_runaway_expression_ends_with_budget_exceeded(backend: CelBackend, expr: str) -> None:
    activation = backend.bind({"s": "x" * 10_000})
    compiled = backend.compile(expr)
    started = time.monotonic()
    with pytest.raises(CelEvalError) as caught:
        compiled.evaluate(activation, Budget(max_cost=1_000_000, max_seconds=0.5))
    assert caught.value.code == "budget_exceeded"
    assert time.monotonic() - started < 5.0  # generous: the 2 CI cores are shared


def test_cost_budget_counts_comprehension_iterations(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(1000).all(i, true)")
    activation = backend.bind({})
    assert compiled.evaluate(activation, Budget(max_cost=100_000, max_seconds=30.0)) is True
    with pytest.raises(CelEvalError, match="cost budget") as caught:
        compiled.evaluate(activation, Budget(max_cost=1_000))
    assert caught.value.code == "budget_exceeded"


def test_time_budget_stops_a_long_evaluation(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(100000).all(i, lists.range(100).all(j, true))")
    started = time.monotonic()
    with pytest.raises(CelEvalError, match="time budget") as caught:
        compiled.evaluate(backend.bind({}), Budget(max_cost=10**12, max_seconds=0.2))
    assert caught.value.code == "budget_exceeded"
    assert time.monotonic() - started < 5.0


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
