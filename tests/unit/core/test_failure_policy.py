"""failurePolicy is one rule: every error Result (a CEL error, a non-bool, an unbound param, a request
the backend cannot hold, an evaluation over the webhook's budget) takes its action from one function."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from policyengine import errors
from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Action, FailurePolicy, Inventory, Outcome, Policy, SourceRef
from policyengine.policyset import build_policy_set
from policyengine.results import error_result
from tests.unit.core.test_engine import NOW, engine, pod, policy
from webhook.admission import over_budget

ROOT = Path(__file__).resolve().parents[3]
SOURCE = SourceRef(file="p.yaml", line=3)


def _readers_of_failure_policy() -> list[str]:
    """Every function in the core and the webhook that reads ``<something>.failure_policy``."""
    found: list[str] = []
    for package in ("policyengine", "webhook"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for func in ast.walk(tree):
                if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(func):
                    if (
                        isinstance(node, ast.Attribute)
                        and node.attr == "failure_policy"
                        and isinstance(node.ctx, ast.Load)
                    ):
                        found.append(f"{path.relative_to(ROOT)}:{func.name}")
    return sorted(set(found))


def test_the_failure_policy_rule_is_written_once() -> None:
    # ``generate vap`` copies the value into a ValidatingAdmissionPolicy, for the API server to apply: it
    # applies no rule of its own.
    assert _readers_of_failure_policy() == [
        "policyengine/results.py:error_result",
        "policyengine/vapgen/__init__.py:_spec",
    ]


@pytest.mark.parametrize(
    ("failure", "actions", "given", "expected"),
    [
        (FailurePolicy.FAIL, {Action.DENY}, None, Action.DENY),
        (FailurePolicy.FAIL, {Action.WARN, Action.AUDIT}, None, Action.WARN),
        (FailurePolicy.FAIL, {Action.WARN}, Action.DENY, Action.DENY),  # a binding that cannot be configured
        (FailurePolicy.IGNORE, {Action.DENY}, None, Action.AUDIT),
        (FailurePolicy.IGNORE, {Action.WARN}, Action.DENY, Action.AUDIT),
    ],
)
def test_an_error_takes_the_failure_action(
    failure: FailurePolicy, actions: set[Action], given: Action | None, expected: Action
) -> None:
    p = Policy(
        name="p",
        source=SOURCE,
        failure_policy=failure,
        actions=frozenset(actions),
        category="security",
        severity="high",
        remediation="fix it",
    )
    result = error_result(p, "boom", code=errors.EVAL_ERROR, action=given)
    assert (result.action, result.outcome, result.code) == (expected, Outcome.ERROR, "eval_error")
    assert (result.category, result.severity, result.remediation, result.policy_source) == (
        "security",
        "high",
        "fix it",
        SOURCE,
    )


def _broken(failure: str) -> Engine:
    spec = f"""
  failurePolicy: {failure}
  match: {{kinds: [{{apiGroups: [""], kinds: [Pod]}}]}}
  validations:
    - expression: "object.spec.nope == 1"
"""
    return engine(
        policy(
            "broken",
            spec,
            "  annotations: {policyengine.io/category: security, policyengine.io/severity: high}",
        )
    )


@pytest.mark.parametrize("failure", ["Fail", "Ignore"])
def test_over_budget_results_are_the_evaluation_errors_of_the_same_policies(failure: str) -> None:
    eng = _broken(failure)
    (doc,) = parse_text(pod(), "m.yaml")
    request = request_for(doc)
    evaluated = eng.evaluate(request, now=NOW)
    late = over_budget(eng, request, Inventory(), 2.0)
    assert [r.code for r in evaluated.results] == ["eval_error"]
    assert [r.code for r in late.results] == ["budget_exceeded"]
    assert late.results[0].message == "evaluation did not finish within the webhook's 2s budget"
    # The same policy, the same failurePolicy: the same action, the same verdict, the same metadata.
    drop = {"message": "", "code": None, "validation": None, "reason": None, "field_path": None}
    assert replace(late.results[0], **drop) == replace(evaluated.results[0], **drop)  # type: ignore[arg-type]
    assert late.allowed is evaluated.allowed is (failure == "Ignore")
    assert late.policy_set_digest == eng.digest


def test_unevaluated_covers_only_the_policies_that_match() -> None:
    eng = Engine(
        build_policy_set(
            parse_text(
                policy(
                    "pods",
                    '  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}\n  validations: '
                    '[{expression: "true"}]',
                )
                + policy(
                    "jobs",
                    "  match: {kinds: [{apiGroups: [batch], kinds: [Job]}]}\n  validations: "
                    '[{expression: "true"}]',
                ),
                "policies.yaml",
            )
        )
    )
    (doc,) = parse_text(pod(), "m.yaml")
    decision = eng.unevaluated(request_for(doc), message="no time", code=errors.EVAL_BUDGET)
    assert [(r.policy, r.action, r.outcome) for r in decision.results] == [
        ("pods", Action.DENY, Outcome.ERROR)
    ]
    assert not decision.allowed
