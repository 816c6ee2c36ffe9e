"""The documented examples of CEL's optional types (tests/fixtures/cel-optionals) give the documented
results in both backends, and a ValidatingAdmissionPolicy written with optional syntax loads and
decides as Kubernetes would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cel import BACKENDS, CelBackend, CelEvalError, get_backend
from policyengine.cel.lib.optional import NONE, Optional
from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Inventory, Outcome
from policyengine.policyset import build_policy_set

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cel-optionals"
DOCUMENTED: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "documented.yaml").read_text(encoding="utf-8"))
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


def _binding(value: Any) -> Any:
    """``{$of: v}`` / ``{$none: true}`` in the fixture stand for an optional binding."""
    if isinstance(value, dict) and "$of" in value:
        return Optional(True, value["$of"])
    if isinstance(value, dict) and "$none" in value:
        return NONE
    return value


@pytest.mark.parametrize("case", DOCUMENTED, ids=[f"{i}-{c['expr']}" for i, c in enumerate(DOCUMENTED)])
def test_documented_optional_examples(backend: CelBackend, case: dict[str, Any]) -> None:
    activation = backend.bind({k: _binding(v) for k, v in (case.get("bindings") or {}).items()})
    compiled = backend.compile(case["expr"])
    if case.get("error"):
        with pytest.raises(CelEvalError):
            compiled.evaluate(activation)
        return
    assert compiled.evaluate(activation) == case["expect"]


def _pod(labels: str, pod_security: str, container_security: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: team-a, labels: {labels}}}
spec:
  securityContext: {pod_security}
  containers:
    - {{name: main, image: example.com/app:1, securityContext: {container_security}}}
"""


@pytest.mark.parametrize(
    ("manifest", "messages"),
    [
        (_pod("{team: ml}", "{runAsNonRoot: true}", "{}"), []),
        (_pod("{team: ml}", "{}", "{runAsNonRoot: true}"), []),
        (_pod("{team: ml}", "{runAsNonRoot: true}", "{runAsNonRoot: false}"), ["containers must run as non-root"]),
        (_pod("{}", "{}", "{}"), ["containers must run as non-root", "pods need a team label"]),
    ],
)  # fmt: skip
def test_policy_with_optional_syntax_loads_and_decides(manifest: str, messages: list[str]) -> None:
    text = (FIXTURES / "policy.yaml").read_text(encoding="utf-8")
    policy_set = build_policy_set(parse_text(text, "policy.yaml"))
    (doc,) = parse_text(manifest, "pod.yaml")
    decision = Engine(policy_set).evaluate(request_for(doc), inventory=Inventory(), now=NOW)
    found = sorted(r.message for r in decision.results if r.outcome is not Outcome.PASS)
    assert found == messages


def test_variables_read_through_optional_syntax_are_checked_at_load() -> None:
    text = (FIXTURES / "policy.yaml").read_text(encoding="utf-8")
    bad = text.replace("object.metadata.?labels[?'team'].orValue('')", "variables.?teem.orValue('')")
    with pytest.raises(LoadError) as caught:
        build_policy_set(parse_text(bad, "policy.yaml"))
    assert "variables.teem is not declared" in caught.value.problems[0].message
    indexed = text.replace("object.metadata.?labels[?'team'].orValue('')", "variables[?'teem'].orValue('')")
    with pytest.raises(LoadError) as caught:
        build_policy_set(parse_text(indexed, "policy.yaml"))
    assert "variables.teem is not declared" in caught.value.problems[0].message


@pytest.mark.parametrize("engine_backend", BACKENDS)
@pytest.mark.parametrize(("pod", "denied"), [("{team: ml}", False), ("{}", True)])
def test_a_variable_read_through_optional_syntax(engine_backend: str, pod: str, denied: bool) -> None:
    text = (
        (FIXTURES / "policy.yaml")
        .read_text(encoding="utf-8")
        .replace(
            "object.metadata.?labels[?'team'].orValue('') != ''",
            "variables.?team.orValue('') != '' && variables[?'containers'].hasValue()",
        )
    )
    text = text.replace(
        "  variables:\n",
        "  variables:\n    - {name: team, expression: \"object.metadata.?labels[?'team'].orValue('')\"}\n",
    )
    compiler = Compiler(get_backend(engine_backend))
    policy_set = build_policy_set(parse_text(text, "policy.yaml"), compiler=compiler)
    (doc,) = parse_text(_pod(pod, "{runAsNonRoot: true}", "{}"), "pod.yaml")
    decision = Engine(policy_set).evaluate(request_for(doc), inventory=Inventory(), now=NOW)
    messages = [r.message for r in decision.results if r.outcome is not Outcome.PASS]
    assert messages == (["pods need a team label"] if denied else [])
