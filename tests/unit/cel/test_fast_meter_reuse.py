"""The fast backend re-arms a spare meter for each evaluation instead of making one. Nothing of one
evaluation's budget reaches the next: its cost starts at zero, its deadline counts from its own start,
its limits are its own budget's. Evaluations nested in another, or running on other threads at the same
time, each spend their own budget; and what every evaluation is charged is what it was charged when each
had a new meter.

Nothing here measures time: budgets are shown by the cost charged and the error code, and the time
budget runs on a clock the test controls (the deadline otherwise passed, 60 s, is only a hang guard).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import Activation, Budget, CelEvalError, CompiledExpr, budget, get_backend
from policyengine.cel.port import budget_override
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.policyset import load_policy_set

HANG_GUARD = 60.0
ROOT = Path(__file__).resolve().parents[3]
fast = get_backend("fast")
LOOP = "lists.range(1000).all(i, true)"


def outcome(compiled: CompiledExpr, activation: Activation, max_cost: int) -> Any:
    """The result, or the CelEvalError, of one evaluation under a cost budget of ``max_cost``."""
    try:
        return compiled.evaluate(activation, Budget(max_cost=max_cost, max_seconds=HANG_GUARD))
    except CelEvalError as err:
        return err


def charged(compiled: CompiledExpr, activation: Callable[[], Activation]) -> int:
    """What one evaluation is charged: the least cost budget it completes under (charges only add up,
    and an evaluation fails as soon as they pass its budget). A new activation per try, so lazy
    variables are computed, and charged, by every one."""
    low, high = 0, 1 << 20
    while low < high:
        mid = (low + high) // 2
        result = outcome(compiled, activation(), mid)
        if isinstance(result, CelEvalError) and result.code == "budget_exceeded":
            low = mid + 1
        else:
            high = mid
    return low


def test_an_exhausted_cost_budget_does_not_reach_the_next_evaluation() -> None:
    compiled = fast.compile(LOOP)
    activation = fast.bind({})
    cost = charged(compiled, lambda: activation)
    errors = [outcome(compiled, activation, cost - 1) for _ in range(3)]
    assert all(isinstance(e, CelEvalError) and e.code == "budget_exceeded" for e in errors), errors
    # Each started from zero: the same charge when stopped, not the last one's added to it.
    assert [e.cost for e in errors] == [cost] * 3
    # Right after running out, the exact budget suffices, a larger one too, and a smaller one still fails.
    assert outcome(compiled, activation, cost) is True
    assert outcome(compiled, activation, 10 * cost) is True
    assert outcome(compiled, activation, cost - 1).cost == cost
    assert fast.compile("[1, 2, 3].all(i, i > 0)").evaluate(activation, Budget(max_cost=100)) is True


SLOW = "lists.range(100000).all(i, lists.range(100).all(j, true))"


def test_a_timed_out_evaluation_does_not_shorten_the_next(ticking_clock: list[int]) -> None:
    """Every evaluation under a 0.5 s budget reads the clock 502 times (the start, then one per 256
    units of cost until past the deadline): the second gets its whole allowance again."""
    compiled = fast.compile(SLOW)
    half_second = Budget(max_cost=10**12, max_seconds=0.5)
    for _ in range(3):
        before = ticking_clock[0]
        with pytest.raises(CelEvalError, match="time budget") as caught:
            compiled.evaluate(fast.bind({}), half_second)
        assert caught.value.code == "budget_exceeded"
        assert ticking_clock[0] - before == 502
        assert fast.compile(LOOP).evaluate(fast.bind({}), half_second) is True


def test_the_deadline_counts_from_each_evaluations_start(ticking_clock: list[int]) -> None:
    """A meter last armed long ago (here 100 s of clock) gives the next evaluation its whole budget."""
    half_second = Budget(max_cost=10**12, max_seconds=0.5)
    assert fast.compile("[1].all(i, true)").evaluate(fast.bind({}), half_second) is True
    ticking_clock[0] += 100_000
    before = ticking_clock[0]
    with pytest.raises(CelEvalError, match="time budget"):
        fast.compile(SLOW).evaluate(fast.bind({}), half_second)
    assert ticking_clock[0] - before == 502


class Abandoned(BaseException):
    pass


def test_an_abandoned_evaluation_leaves_nothing_behind(ticking_clock: list[int]) -> None:
    """The event loop's budget escapes (a BaseException the backend does not handle); the next
    evaluation, under a plain budget, is charged and timed as if none had run."""
    compiled = fast.compile(SLOW + " || true")
    with pytest.raises(Abandoned):
        compiled.evaluate(fast.bind({}), Budget(max_cost=10**12, max_seconds=0.5, escape=Abandoned))
    loop = fast.compile(LOOP)
    cost = charged(loop, lambda: fast.bind({}))
    assert outcome(loop, fast.bind({}), cost - 1).cost == cost
    before = ticking_clock[0]
    with pytest.raises(CelEvalError, match="time budget"):
        compiled.evaluate(fast.bind({}), Budget(max_cost=10**12, max_seconds=0.5))
    assert ticking_clock[0] - before == 502


def lazy(heavy: CompiledExpr) -> Activation:
    return fast.bind({}).extend({}, variables=[("evens", heavy, None)])


def test_a_lazy_variable_is_charged_to_the_evaluation_that_first_reads_it() -> None:
    heavy = fast.compile("lists.range(2000).filter(i, i % 2 == 0).size()")
    reader = fast.compile("variables.evens == 1000")
    alone = charged(heavy, lambda: fast.bind({}))
    first = charged(reader, lambda: lazy(heavy))
    assert alone > 2000 and first == alone  # computing it is the reader's whole cost

    def read_once() -> Activation:
        activation = lazy(heavy)
        assert reader.evaluate(activation) is True
        return activation

    # Read again in the same activation: memoised, charged nothing more.
    assert charged(reader, read_once) == 0
    # Run out while computing it: the error is the reader's, and the next reader starts afresh.
    activation = lazy(heavy)
    stopped = outcome(reader, activation, alone - 1)
    assert isinstance(stopped, CelEvalError) and stopped.code == "budget_exceeded"
    assert stopped.cost == alone


def test_an_evaluation_nested_in_another_spends_its_own_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer evaluation is interrupted (at its first clock reading past the start) by evaluations
    on the same thread that run out of budget and succeed; it then completes under exactly its cost."""
    outer = fast.compile(LOOP)
    inner = fast.compile("lists.range(500).all(i, true)")
    outer_cost = charged(outer, lambda: fast.bind({}))
    inner_cost = charged(inner, lambda: fast.bind({}))
    seen: list[Any] = []
    readings = [0]

    def clock() -> float:
        readings[0] += 1
        if readings[0] == 2:  # the outer evaluation's first reading past its start
            seen.append(outcome(inner, fast.bind({}), inner_cost - 1))
            seen.append(outcome(inner, fast.bind({}), inner_cost))
        return 0.0

    monkeypatch.setattr(budget, "clock", clock)
    activation = fast.bind({})
    assert outcome(outer, activation, outer_cost) is True
    assert readings[0] > 2
    assert isinstance(seen[0], CelEvalError) and seen[0].cost == inner_cost
    assert seen[1] is True
    assert outcome(outer, activation, outer_cost - 1).cost == outer_cost


def test_two_threads_at_once_each_see_their_own_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread A is held inside its evaluation (at a clock reading) while thread B runs out of a smaller
    budget and then completes one; A then completes under exactly its own cost."""
    slow = fast.compile(LOOP)
    quick = fast.compile("lists.range(500).all(i, true)")
    slow_cost = charged(slow, lambda: fast.bind({}))
    quick_cost = charged(quick, lambda: fast.bind({}))
    inside, done = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def clock() -> float:
        if threading.current_thread().name == "A" and not inside.is_set():
            readings = results.setdefault("A readings", [0])
            readings[0] += 1
            if readings[0] == 2:  # the first reading past the start: mid-evaluation
                inside.set()
                assert done.wait(HANG_GUARD), "thread B never finished"
        return 0.0

    def run_a() -> None:
        results["A"] = outcome(slow, fast.bind({}), slow_cost)

    def run_b() -> None:
        assert inside.wait(HANG_GUARD), "thread A never reached its clock"
        results["B over"] = outcome(quick, fast.bind({}), quick_cost - 1)
        results["B"] = outcome(quick, fast.bind({}), quick_cost)
        done.set()

    monkeypatch.setattr(budget, "clock", clock)
    threads = [threading.Thread(target=run_a, name="A"), threading.Thread(target=run_b, name="B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD)
        assert not thread.is_alive(), "hang guard"
    assert results["A"] is True
    assert isinstance(results["B over"], CelEvalError) and results["B over"].cost == quick_cost
    assert results["B"] is True


# The peak cost of one expression evaluation per policy (the least cost budget under which the policy
# has no budget_exceeded result) for the example manifests, with the shipped packs and the example
# organisation: measured when every evaluation had a new meter. Lazy variables included (gpu-quotas).
PEAKS = {
    ("training.yaml", 1): {
        "ai-images-pinned-by-digest": 8,
        "gpu-declared-in-limits": 30,
        "gpu-no-mig-mixing": 28,
    },
    ("inference.yaml", 0): {
        "ai-images-pinned-by-digest": 4,
        "gpu-declared-in-limits": 28,
        "gpu-no-mig-mixing": 14,
        "model-approved-source": 23,
        "model-pinned-by-digest": 13,
    },
    ("mounted-buckets.yaml", 1): {},
    ("web.yaml", 0): {},
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    config = str(ROOT / "examples" / "governance.yaml")
    compiler = Compiler(get_backend("fast"))
    return Engine(load_policy_set([], config_paths=[config], include_bundled=True, compiler=compiler))


@pytest.mark.parametrize("manifest", sorted(PEAKS))
def test_real_policies_are_charged_as_with_a_new_meter_each(
    engine: Engine, manifest: tuple[str, int]
) -> None:
    path = ROOT / "examples" / "manifests" / manifest[0]
    doc = next(d for d in parse_text(path.read_text(), str(path)) if d.index == manifest[1])
    request, now = request_for(doc), datetime(2026, 1, 1, tzinfo=UTC)

    def over(max_cost: int) -> set[str]:
        with budget_override(Budget(max_cost=max_cost, max_seconds=HANG_GUARD)):
            decision = engine.evaluate(request, now=now)
        return {r.policy for r in decision.results if r.code == "budget_exceeded"}

    policies = {r.policy for r in engine.evaluate(request, now=now).results}
    peaks = {}
    for policy in policies:
        low, high = 0, 1 << 16
        while low < high:
            mid = (low + high) // 2
            low, high = (mid + 1, high) if policy in over(mid) else (low, mid)
        if low:
            peaks[policy] = low
    assert peaks == PEAKS[manifest]
