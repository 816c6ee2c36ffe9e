"""A matchCondition several policies share, and that can charge nothing, is evaluated once per request
on the activation those policies share; a shared condition that charges cost is evaluated, and charged,
for every policy. Either way each policy gets the result it gets alone, on both backends."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.cel.fast import FastExpr
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Decision
from policyengine.policyset import build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FREE = "object.metadata.name != ''"  # a field read and a comparison: charges nothing
CHARGED = "object.spec.containers.all(c, c.name != '')"  # a comprehension: charged per container
FAILING = "object.spec.missing == 1"  # charges nothing, and fails on this Pod


def policy(name: str, conditions: list[str], validation: str) -> str:
    conds = "".join(f"\n    - {{name: c{i}, expression: {c!r}}}" for i, c in enumerate(conditions))
    return (
        f"apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n"
        f"  matchConditions:{conds}\n  validations:\n    - expression: {validation!r}\n"
    )


POLICIES = "---\n".join(
    [
        policy("first", [FREE, CHARGED], "object.metadata.name == 'p'"),
        policy("second", [FREE, CHARGED], "object.metadata.name == 'q'"),
        policy("third", [FREE], "true"),
        policy("skips", [FREE, "object.metadata.name == 'other'"], "true"),
        policy("fails-once", [FAILING], "true"),
        policy("fails-twice", [FAILING], "true"),
    ]
)
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team-a}\nspec: {containers: [{name: m, image: x}]}\n"


def engine(backend: str) -> Engine:
    compiler = Compiler(get_backend(backend))
    return Engine(build_policy_set(parse_text(POLICIES, "policies.yaml"), compiler=compiler))


def decide(engine: Engine) -> Decision:
    (doc,) = parse_text(POD, "m.yaml")
    return engine.evaluate(request_for(doc), now=NOW)


def outcomes(decision: Decision) -> list[tuple[str, str, str]]:
    return [(r.policy, str(r.outcome), r.message) for r in decision.results]


def test_a_free_shared_condition_runs_once_and_a_charged_one_for_every_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = engine("fast")
    runs: Counter[str] = Counter()
    original = FastExpr.evaluate

    def counting(self: FastExpr, activation: Any, budget: Any = None) -> Any:
        runs[self.source] += 1
        return original(self, activation, budget) if budget is not None else original(self, activation)

    decide(fast)  # warm: the expressions run as generated Python from now on
    monkeypatch.setattr(FastExpr, "evaluate", counting)
    decision = decide(fast)
    assert runs[FREE] == 1  # four policies share it: one evaluation
    assert runs[CHARGED] == 2  # charged for each of the two policies that have it
    assert runs[FAILING] == 2  # a failure is not kept: each policy evaluates it and gets its error
    found = {r.policy: r for r in decision.results}
    assert [str(found[n].outcome) for n in ("first", "second", "third", "skips")] == [
        "pass",
        "fail",
        "pass",
        "skip",
    ]
    assert str(found["fails-once"].outcome) == str(found["fails-twice"].outcome) == "error"
    assert "missing" in found["fails-once"].message


def test_both_backends_decide_alike() -> None:
    assert outcomes(decide(engine("fast"))) == outcomes(decide(engine("reference")))


def test_a_shared_condition_is_evaluated_again_on_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = engine("fast")
    runs: Counter[str] = Counter()
    original = FastExpr.evaluate

    def counting(self: FastExpr, activation: Any, budget: Any = None) -> Any:
        runs[self.source] += 1
        return original(self, activation, budget) if budget is not None else original(self, activation)

    monkeypatch.setattr(FastExpr, "evaluate", counting)
    first, second = decide(fast), decide(fast)
    assert runs[FREE] == 2  # once per request, never carried from one to the next
    assert outcomes(first) == outcomes(second)
