"""The one-variable ``filter``/``map`` and the ``in`` operator on lists of the fast backend take shorter
paths than the general ones (no scope tuple per item; Python's ``in`` before the CEL equality walk).
These pin that the results, the errors and the cost charged are those of CEL on both forms of the
backend (closures, and generated Python once warm) and match the reference backend."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.cel import Budget, CelEvalError, get_backend
from policyengine.cel.fast import FastBackend

FORMS = {"closures": FastBackend(generate_after=None), "generated": FastBackend(generate_after=0)}
DATA: dict[str, Any] = {
    "xs": [3, 1, 4, 1, 5],
    "m": {"a": 1, "bb": 2, "ccc": 3},
    "names": ["ALL", "NET_ADMIN"],
    "mixed": [1, "1", True],
}
CASES = [
    ("xs.filter(x, x > 1)", [3, 4, 5]),
    ("xs.map(x, x * 2)", [6, 2, 8, 2, 10]),
    ("xs.map(x, x > 2, x + 1)", [4, 5, 6]),
    ("m.filter(k, size(k) > 1)", ["bb", "ccc"]),
    ("m.map(k, m[k])", [1, 2, 3]),
    ("'ALL' in names", True),
    ("'all' in names", False),
    ("'1' in mixed", True),
    ("'2' in mixed", False),
    ("1 in mixed", True),
    ("'x' in []", False),
]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(("source", "expected"), CASES)
def test_results_are_cels(form: str, source: str, expected: Any) -> None:
    backend = FORMS[form]
    reference = get_backend("reference")
    assert backend.compile(source).evaluate(backend.bind(DATA)) == expected
    assert reference.compile(source).evaluate(reference.bind(DATA)) == expected


@pytest.mark.parametrize("form", sorted(FORMS))
def test_errors_are_cels(form: str) -> None:
    backend = FORMS[form]
    activation = backend.bind(DATA)
    with pytest.raises(CelEvalError, match="must be a bool"):
        backend.compile("xs.filter(x, x)").evaluate(activation)
    with pytest.raises(CelEvalError, match="non-collection"):
        backend.compile("dyn(1).map(x, x)").evaluate(activation)
    with pytest.raises(CelEvalError, match=r"divide by zero|division by zero"):
        backend.compile("xs.map(x, 1 / (x - 1))").evaluate(activation)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("macro", ["filter(i, true)", "map(i, i)"])
def test_each_iteration_is_charged(form: str, macro: str) -> None:
    """1,000 iterations cost more than a budget of 1,000: the comprehension stops with budget_exceeded,
    charged past the budget, and the same comprehension on 10 items fits in it."""
    backend = FORMS[form]
    activation = backend.bind({})
    small = backend.compile(f"lists.range(10).{macro}")
    assert len(small.evaluate(activation, Budget(max_cost=1_000, max_seconds=30.0))) == 10
    large = backend.compile(f"lists.range(1000).{macro}")
    with pytest.raises(CelEvalError, match="cost budget") as caught:
        large.evaluate(activation, Budget(max_cost=1_000, max_seconds=30.0))
    assert caught.value.code == "budget_exceeded"
    assert caught.value.cost is not None and caught.value.cost > 1_000
