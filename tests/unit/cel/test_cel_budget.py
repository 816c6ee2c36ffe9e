"""Every evaluation is bounded: runaway expressions end with budget_exceeded, having been charged past
their cost budget before they could build or loop further.

Nothing here measures time. A runaway is shown bounded by the error code, the cost charged when it
stopped and the memory it allocated; the time budget runs on a clock the test controls. The deadline
every test passes (60 s) is only a hang guard: a test asserting the cost budget ended an evaluation
fails, clearly, if the deadline did instead.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelEvalError, get_backend
from policyengine.cel.budget import Meter

HANG_GUARD = 60.0
MiB = 2**20


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


def stopped_by_cost(
    backend: CelBackend, expr: str, bindings: dict[str, object], max_cost: int
) -> tuple[CelEvalError, int]:
    """The budget error ``expr`` ends with, and the peak memory it allocated before."""
    activation = backend.bind(bindings)  # converting the bindings is the caller's, not the expression's
    compiled = backend.compile(expr)
    tracemalloc.start()
    try:
        with pytest.raises(CelEvalError) as caught:
            compiled.evaluate(activation, Budget(max_cost=max_cost, max_seconds=HANG_GUARD))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = caught.value
    assert err.code == "budget_exceeded", err
    assert "cost budget" in str(err), f"{expr} ran into the {HANG_GUARD} s hang guard: {err}"
    assert err.cost is not None and err.cost > max_cost, err.cost
    return err, peak


RUNAWAYS = [
    "lists.range(100000).all(i, lists.range(100000).all(j, true))",
    "lists.range(100000).map(i, lists.range(100000).filter(j, j > i)).size() > 0",
    "lists.range(1000000000).size() > 0",
    "s.replace('', s).replace('', s).size() > 0",
    "lists.range(100000).map(i, s).join().size() > 0",
    "lists.range(3000).exists(i, lists.range(3000).exists(j, i + j < 0))",
]


# What a runaway may allocate before its budget stops it: each charges what it builds before building
# it (the join once built ~1 GB of copies first).
RUNAWAY_MEMORY = 32 * MiB


@pytest.mark.parametrize("expr", RUNAWAYS)
def test_runaway_expression_ends_with_budget_exceeded(backend: CelBackend, expr: str) -> None:
    _, peak = stopped_by_cost(backend, expr, {"s": "x" * 10_000}, max_cost=100_000)
    assert peak < RUNAWAY_MEMORY, f"{peak / MiB:.0f} MiB allocated before the budget stopped it"


def test_join_of_a_large_list_is_charged_before_it_is_built() -> None:
    """``lists.range(100000).map(i, s).join()`` with a 10 KB ``s``: the map fits the fast backend's
    budget (5,000,000), so the join is reached, and it is charged the whole 1 GB it would build in one step, before
    a character of it is copied."""
    backend = get_backend("fast")
    _, peak = stopped_by_cost(
        backend, "lists.range(100000).map(i, s).join().size() > 0", {"s": "x" * 10_000}, 5_000_000
    )
    assert peak < 64 * MiB, f"{peak / MiB:.0f} MiB allocated before the budget stopped the join"
    # What stopped it is the join (its arguments' conversion first): the list alone fits the budget.
    without_join = backend.compile("lists.range(100000).map(i, s).size() > 0")
    assert without_join.evaluate(backend.bind({"s": "x" * 10_000}), Budget(5_000_000, HANG_GUARD)) is True


def test_cost_budget_counts_comprehension_iterations(backend: CelBackend) -> None:
    compiled = backend.compile("lists.range(1000).all(i, true)")
    activation = backend.bind({})
    assert compiled.evaluate(activation, Budget(max_cost=100_000, max_seconds=30.0)) is True
    with pytest.raises(CelEvalError, match="cost budget") as caught:
        compiled.evaluate(activation, Budget(max_cost=1_000))
    assert caught.value.code == "budget_exceeded"


def test_time_budget_stops_a_long_evaluation(backend: CelBackend, ticking_clock: list[int]) -> None:
    """The deadline is read once per 256 units of cost or so, so on a clock advancing 1 ms a reading, a
    0.5 s budget ends the evaluation after 501 readings past the first: at a cost the test can bound, however fast the
    machine is. The cost budget is out of reach: only the deadline can have ended it."""
    compiled = backend.compile("lists.range(100000).all(i, lists.range(100).all(j, true))")
    with pytest.raises(CelEvalError, match="time budget") as caught:
        compiled.evaluate(backend.bind({}), Budget(max_cost=10**12, max_seconds=0.5))
    assert caught.value.code == "budget_exceeded"
    # the reading that starts the clock, then one per 256 units until past the deadline
    assert ticking_clock[0] == 502
    cost = caught.value.cost
    # At least 256 units between readings; a reading comes with the first charge past the interval,
    # which a comprehension's whole iteration (100 units for the inner range and its loop) may overshoot.
    assert cost is not None and 501 * 256 <= cost <= 501 * 612, cost


class Abandoned(BaseException):
    pass


def test_a_budget_with_an_escape_abandons_the_evaluation_when_its_time_runs_out(
    backend: CelBackend, ticking_clock: list[int]
) -> None:
    """The event loop's budget: running out of time raises the escape, which no CEL error handling
    absorbs (``<error> || true`` is true), instead of deciding a ``budget_exceeded`` result."""
    compiled = backend.compile("lists.range(100000).all(i, lists.range(100).all(j, true)) || true")
    with pytest.raises(Abandoned):
        compiled.evaluate(backend.bind({}), Budget(max_cost=10**12, max_seconds=0.5, escape=Abandoned))
    assert ticking_clock[0] == 502  # cut where the plain budget cuts it
    with pytest.raises(CelEvalError, match="cost budget"):  # the cost budget still decides
        compiled.evaluate(backend.bind({}), Budget(max_cost=1_000, max_seconds=60, escape=Abandoned))


def test_time_budget_is_not_read_on_a_cheap_evaluation(backend: CelBackend, ticking_clock: list[int]) -> None:
    compiled = backend.compile("[1, 2, 3].all(i, i > 0)")
    assert compiled.evaluate(backend.bind({}), Budget(max_cost=1_000, max_seconds=0.0005)) is True
    assert ticking_clock[0] == 1  # the deadline was set and never checked: under 256 units spent


def test_the_meter_runs_on_the_monotonic_clock() -> None:
    assert Meter(Budget()).clock is time.monotonic


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
