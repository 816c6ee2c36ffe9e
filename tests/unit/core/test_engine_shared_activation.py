"""Policies with the same params share one activation per request for what reads no variables (their
matchConditions, the whole of a policy without variables); a policy whose conditions hold gets its own
activation with its own lazy variables, and a policy whose conditions read variables gets them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.cel.fast import FastActivation
from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Decision
from policyengine.policyset import build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def policy(name: str, conditions: list[str], variables: dict[str, str], validation: str) -> str:
    conds = "".join(f"\n    - {{name: c{i}, expression: {c!r}}}" for i, c in enumerate(conditions))
    vars_ = "".join(f"\n    - {{name: {k}, expression: {v!r}}}" for k, v in variables.items())
    return (
        f"apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n"
        f"  matchConditions:{conds}\n  variables:{vars_}\n"
        f"  validations:\n    - expression: {validation!r}\n"
        f"      messageExpression: \"'{name} saw ' + string(variables.x)\"\n"
    )


POLICIES = "---\n".join(
    [
        # The same variable name in each policy, a different value: each sees its own.
        policy("reads-in-condition", ["variables.x == 'a'"], {"x": "'a'"}, "variables.x != 'a'"),
        policy("holds", ["object.metadata.name != ''"], {"x": "'b'"}, "variables.x != 'b'"),
        policy("broken", ["true"], {"x": "1 / 0"}, "variables.x == 1"),
        policy("skipped", ["object.metadata.name == 'other'"], {"x": "'c'"}, "true"),
        policy("skipped-too", ["object.metadata.name == 'other'"], {"x": "'d'"}, "true"),
    ]
)
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team-a}\nspec: {containers: [{name: m, image: x}]}\n"


def decide(engine: Engine) -> Decision:
    (doc,) = parse_text(POD, "m.yaml")
    return engine.evaluate(request_for(doc), now=NOW)


def test_each_policy_sees_its_own_variables_and_skips_share_one_activation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine(build_policy_set(parse_text(POLICIES, "policies.yaml")))
    extended: list[Any] = []
    original = FastActivation.extend

    def counting(self: FastActivation, bindings: Any, variables: Any = ()) -> FastActivation:
        extended.append((dict(bindings), len(variables)))
        return original(self, bindings, variables)

    monkeypatch.setattr(FastActivation, "extend", counting)
    found = {r.policy: r for r in decide(engine).results}
    assert (str(found["reads-in-condition"].outcome), found["reads-in-condition"].message) == (
        "fail",
        "reads-in-condition saw a",
    )
    assert (str(found["holds"].outcome), found["holds"].message) == ("fail", "holds saw b")
    assert str(found["broken"].outcome) == "error"
    assert "variables.x" in found["broken"].message and "division by zero" in found["broken"].message
    assert str(found["skipped"].outcome) == str(found["skipped-too"].outcome) == "skip"
    # One activation without variables for every policy that reads none (here: the conditions of
    # holds, broken and both skipped policies), and one with variables per policy that needs them.
    assert [n for _, n in extended] == [1, 0, 1, 1]
