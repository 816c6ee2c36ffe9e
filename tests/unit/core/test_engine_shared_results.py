"""The results that are the same on every request (a false matchCondition's skip, the skip of a policy
whose config facts are missing) are built once with the engine and shared, not rebuilt per request."""

from __future__ import annotations

from datetime import UTC, datetime

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Decision, Outcome
from policyengine.policyset import build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

POLICIES = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: conditioned}
spec:
  matchConditions:
    - {name: first, expression: "true"}
    - {name: only-b, expression: "object.metadata.name == 'b'"}
  validations: [{expression: "false"}]
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: needs-config
  annotations: {policyengine.io/requires-config: "spec.residency.dataLocations"}
spec:
  validations: [{expression: "false"}]
"""

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: team-a}\nspec: {containers: [{name: m, image: x}]}\n"


def decide(engine: Engine, name: str) -> Decision:
    (doc,) = parse_text(POD % name, "m.yaml")
    return engine.evaluate(request_for(doc), now=NOW)


def test_skips_are_built_once_and_name_the_condition_that_failed() -> None:
    policy_set = build_policy_set(parse_text(POLICIES, "policies.yaml"))
    engine = Engine(policy_set)
    first, second = decide(engine, "a"), decide(engine, "c")
    skipped, unconfigured = first.results
    assert (skipped.policy, skipped.outcome) == ("conditioned", Outcome.SKIP)
    assert skipped.message == "matchCondition 'only-b' is false"
    assert unconfigured.outcome is Outcome.SKIP
    needs_config = next(p for p in policy_set.policies if p.name == "needs-config")
    assert unconfigured == policy_set.not_configured(needs_config)
    # The same objects on the next request: nothing is rebuilt per request.
    assert second.results[0] is skipped
    assert second.results[1] is unconfigured
    # A request the condition holds for is still judged.
    assert [str(r.outcome) for r in decide(engine, "b").results] == ["fail", "skip"]
