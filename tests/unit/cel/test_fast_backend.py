"""What the fast backend promises beyond agreeing with the reference: no per-request conversion, CEL's
value distinctions kept on plain Python values, commutative error absorption, and no shared state."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from policyengine.cel import Budget, CelEvalError
from policyengine.cel.fast import FastBackend


@pytest.fixture(scope="module")
def fast() -> FastBackend:
    return FastBackend()


def _eval(fast: FastBackend, expr: str, **bindings: Any) -> Any:
    return fast.compile(expr).evaluate(fast.bind(bindings))


def test_bind_uses_the_request_as_it_is(fast: FastBackend) -> None:
    obj = {"spec": {"replicas": 3}}
    activation = fast.bind({"object": obj})
    assert activation.values["object"] is obj
    assert activation.extend({"params": None}).values["object"] is obj


@pytest.mark.parametrize(("expr", "expected"), [
    ("true == 1", False), ("type(1u) == uint", True), ("type(1) == int", True), ("1 == 1.0", True),
    ("1 < 1.5", True), ("size('héllo')", 5), ("[[1], [2]] == [[1.0], [2u]]", True), ("{'a': 1} == {'a': 1.0}", True),
    ("'a' in {'a': 1}", True), ("2 in [1, 2]", True), ("[1, 2].exists_one(x, x > 1)", True),
    ("[1, 2, 3].map(x, x > 1, x * 2)", [4, 6]), ("-7 / 2", -3), ("-7 % 2", -1),
    ("object.flag ? 'on' : 'off'", "on"),
])  # fmt: skip
def test_cel_values_on_plain_python(fast: FastBackend, expr: str, expected: Any) -> None:
    result = _eval(fast, expr, object={"flag": True})
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("expr", "expected"), [
    ("1 / 0 > 0 && false", False), ("false && 1 / 0 > 0", False), ("1 / 0 > 0 || true", True),
    ("true || 1 / 0 > 0", True), ("[0, 1].exists(x, 1 / x > 0)", True), ("![1, 0].all(x, 1 / x > 1)", True),
])  # fmt: skip
def test_errors_are_absorbed_whichever_side_fails(fast: FastBackend, expr: str, expected: bool) -> None:
    assert _eval(fast, expr) is expected


@pytest.mark.parametrize("expr", [
    "9223372036854775807 + 1", "-9223372036854775807 - 2", "0u - 1u", "1 + 1u", "1 / 0", "object.missing",
    "[1][1]", "true && 1 / 0 > 0",
])  # fmt: skip
def test_errors(fast: FastBackend, expr: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        _eval(fast, expr, object={})
    assert caught.value.code == "eval_error"


def test_a_lazy_variable_spends_the_budget_of_the_expression_using_it(fast: FastBackend) -> None:
    heavy = fast.compile("lists.range(5000).filter(i, i % 2 == 0).size()")
    activation = fast.bind({}).extend({}, variables=[("evens", heavy, None)])
    with pytest.raises(CelEvalError) as caught:
        fast.compile("variables.evens > 0").evaluate(activation, Budget(max_cost=2_000))
    assert caught.value.code == "budget_exceeded"


def test_one_activation_and_expression_from_many_threads(fast: FastBackend) -> None:
    counted = fast.compile("object.items.filter(x, x % 3 == 0).size() + variables.base")
    expected = {n: len([x for x in range(n) if x % 3 == 0]) + 1 for n in range(30, 60)}
    activations = {
        n: fast.bind({"object": {"items": list(range(n))}}).extend(
            {}, variables=[("base", fast.compile("1"), None)]
        )
        for n in expected
    }
    wrong: list[Any] = []

    def work() -> None:
        for _ in range(20):
            for n, activation in activations.items():
                value = counted.evaluate(activation)
                if value != expected[n]:
                    wrong.append((n, value))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
