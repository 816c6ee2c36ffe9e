"""The lazy ``variables`` map: computed on first use, memoised, isolated from each other's errors."""

from __future__ import annotations

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelEvalError, get_backend


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


def test_variable_is_evaluated_once_and_memoised(backend: CelBackend) -> None:
    # An expensive variable used three times costs once: the budget only allows one computation.
    heavy = backend.compile("lists.range(2000).filter(i, i % 2 == 0).size()")
    activation = backend.bind({}).extend({}, variables=[("evens", heavy, None)])
    expr = backend.compile("variables.evens + variables.evens + variables.evens == 3000")
    assert expr.evaluate(activation, Budget(max_cost=150_000, max_seconds=30.0)) is True


def test_variable_not_used_is_never_evaluated(backend: CelBackend) -> None:
    failing = backend.compile("1 / 0")
    activation = backend.bind({"object": {"a": 1}}).extend({}, variables=[("broken", failing, None)])
    assert backend.compile("object.a == 1").evaluate(activation) is True


def test_variable_may_use_earlier_variables(backend: CelBackend) -> None:
    activation = backend.bind({"object": {"replicas": 3}}).extend(
        {},
        variables=[
            ("replicas", backend.compile("object.replicas"), None),
            ("doubled", backend.compile("variables.replicas * 2"), None),
        ],
    )
    assert backend.compile("variables.doubled").evaluate(activation) == 6


def test_constant_variable(backend: CelBackend) -> None:
    activation = backend.bind({}).extend({}, variables=[("limit", None, {"cpu": "2"})])
    assert backend.compile("variables.limit.cpu == '2'").evaluate(activation) is True


def test_error_in_one_variable_does_not_break_others(backend: CelBackend) -> None:
    activation = backend.bind({}).extend(
        {},
        variables=[("bad", backend.compile("1 / 0"), None), ("good", backend.compile("'ok'"), None)],
    )
    with pytest.raises(CelEvalError) as caught:
        backend.compile("variables.bad == 1").evaluate(activation)
    assert caught.value.code == "eval_error"
    assert "bad" in str(caught.value)
    assert backend.compile("variables.good").evaluate(activation) == "ok"
    # The failed variable keeps failing; it is not re-evaluated into a different answer.
    with pytest.raises(CelEvalError):
        backend.compile("variables.bad").evaluate(activation)
    assert backend.compile("has(variables.good)").evaluate(activation) is True


def test_extend_does_not_change_the_parent(backend: CelBackend) -> None:
    base = backend.bind({"object": {"a": 1}})
    child = base.extend({"params": {"max": 2}})
    assert backend.compile("object.a < params.max").evaluate(child) is True
    with pytest.raises(CelEvalError):
        backend.compile("params.max == 2").evaluate(base)


def test_budget_overrun_inside_a_variable_is_a_budget_error(backend: CelBackend) -> None:
    runaway = backend.compile("lists.range(100000).all(i, lists.range(100000).all(j, true))")
    activation = backend.bind({}).extend({}, variables=[("slow", runaway, None)])
    with pytest.raises(CelEvalError) as caught:
        backend.compile("variables.slow").evaluate(activation, Budget(max_cost=100_000, max_seconds=30.0))
    assert caught.value.code == "budget_exceeded"
