"""``generate``: what may run in the API server at each Kubernetes version, the reasons the rest stays on the
webhook, params (kept as a paramRef, or inlined), --static (KEP-5793) and hostile parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Inventory, Outcome
from policyengine.policyset import PolicySet, build_policy_set
from policyengine.vapgen import Generation, generate, parse_minor
from tests.unit.vapgen.test_parity import loaded_back

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def vap(expression: str, name: str = "p", extra: str = "", binding: str = "") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
{extra}
  validations:
    - expression: {expression!r}
      message: refused
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
{binding}
---
"""


def load(text: str) -> PolicySet:
    return build_policy_set(parse_text(text, "policies.yaml"))


def reasons(generation: Generation) -> dict[str, str]:
    return {s.policy: s.reason for s in generation.skipped}


@pytest.mark.parametrize(
    ("expression", "first", "library"),
    [
        ("ip('10.0.0.1').family() == 4", 30, "IP and CIDR"),
        ("!format.dns1123Label().validate(object.metadata.name).hasValue()", 31, "format library"),
        ("object.spec.template.spec.containers.all(i, c, i < 8)", 32, "two-variable"),
        ("object.metadata.labels.transformList(k, v, v).size() < 9", 32, "two-variable"),
        ("semver('1.2.3').major() == 1", 33, "semver"),
        ("lists.range(3).size() == 3", 34, "lists extension"),
        ("[3, 1].sort()[0] == 1", 34, "lists extension"),
    ],
)
def test_a_function_is_generated_from_the_version_that_has_it(
    expression: str, first: int, library: str
) -> None:
    policy_set = load(vap(expression))
    before = generate(policy_set, minor=first - 1) if first > 30 else None
    if before is not None:
        assert not before.generated
        assert library in reasons(before)["p"] and f"from 1.{first}" in reasons(before)["p"]
    assert [g.policy for g in generate(policy_set, minor=first).generated] == ["p"]
    assert [g.policy for g in generate(policy_set, minor=37).generated] == ["p"]


def test_a_function_no_api_server_has_keeps_the_policy_on_the_webhook() -> None:
    generation = generate(load(vap("md5(object.metadata.name) != ''")), minor=37)
    assert reasons(generation) == {
        "p": "validations[0].expression calls md5(), which no Kubernetes API server has"
    }


NATIVE = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  match:
    kinds: [{{apiGroups: [apps], kinds: [Deployment]}}]
  validations:
    - expression: {expression!r}
      message: refused
---
"""


def test_views_config_params_and_exceptions_keep_a_policy_on_the_webhook() -> None:
    text = (
        NATIVE.format(name="reads-workload", expression="workload.gpus.total < 9")
        + NATIVE.format(name="reads-config", expression="object.spec.replicas <= params.limits.replicas")
        + NATIVE.format(name="excepted", expression="object.spec.replicas < 9")
        + NATIVE.format(name="plain", expression="object.spec.replicas < 9")
        + """
apiVersion: policyengine.io/v1
kind: PolicyException
metadata: {name: legacy}
spec:
  policies: [excepted]
  match: {namespaces: [legacy]}
  reason: migration
  approvedBy: ops
"""
    )
    generation = generate(load(text), minor=37)
    assert [g.policy for g in generation.generated] == ["plain"]
    why = reasons(generation)
    assert (
        why["reads-workload"]
        == "validations[0].expression reads the view 'workload', which only policyengine computes"
    )
    assert "GovernanceConfig spec" in why["reads-config"]
    assert "PolicyExceptions" in why["excepted"]


PARAMS = """
  paramKind: {apiVersion: v1, kind: ConfigMap}
"""
LIMITS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: shared}
data: {max: "5"}
---
"""


def deployment(replicas: int) -> Any:
    (doc,) = parse_text(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: a}}\nspec: {{replicas: {replicas}}}\n",
        "d.yaml",
    )
    return request_for(doc)


def verdicts(policy_set: PolicySet, inventory: Inventory) -> list[str]:
    engine = Engine(policy_set)
    return [engine.evaluate(deployment(n), inventory=inventory, now=NOW).verdict for n in (3, 9)]


def test_a_param_ref_is_kept_with_its_param_object_and_inlined_when_static() -> None:
    text = vap(
        "object.spec.replicas <= int(params.data.max)",
        extra=PARAMS,
        binding="  paramRef: {name: limits, namespace: shared, parameterNotFoundAction: Deny}",
    )
    policy_set = load(text + LIMITS)
    api = generate(policy_set, minor=37)
    kinds = [d["kind"] for d in api.documents]
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap"]
    assert api.documents[0]["spec"]["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    assert api.documents[1]["spec"]["paramRef"]["name"] == "limits"

    static = generate(policy_set, minor=36, static=True)
    assert [d["kind"] for d in static.documents] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert all(d["metadata"]["name"].endswith(".static.k8s.io") for d in static.documents)
    assert static.documents[1]["spec"]["policyName"] == static.documents[0]["metadata"]["name"]
    assert "paramKind" not in static.documents[0]["spec"] and "paramRef" not in static.documents[1]["spec"]
    assert (
        "variables.policyengineParams.data.max" in static.documents[0]["spec"]["validations"][0]["expression"]
    )

    source = verdicts(policy_set, Inventory())
    assert source == ["allowed", "denied"]
    assert verdicts(loaded_back(api), Inventory()) == source
    assert verdicts(loaded_back(static), Inventory()) == source


def test_static_skips_a_param_ref_it_cannot_inline() -> None:
    text = vap(
        "object.spec.replicas <= int(params.data.max)",
        extra=PARAMS,
        binding="  paramRef: {selector: {matchLabels: {tier: gold}}, parameterNotFoundAction: Deny}",
    )
    generation = generate(load(text + LIMITS), minor=37, static=True)
    assert not generation.generated
    assert "selects 0 param objects" in reasons(generation)["p"]
    with pytest.raises(ValueError, match=r"1\.36"):
        generate(load(text), minor=35, static=True)


TEMPLATE = """
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8smaxreplicas}
spec:
  crd:
    spec:
      names: {kind: K8sMaxReplicas}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "object.spec.replicas <= params.spec.parameters.max"
                message: too many
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sMaxReplicas
metadata: {name: cap}
spec:
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
    excludedNamespaces: ["kube-*"]
  parameters: PARAMETERS
"""


def test_constraint_params_are_inlined_and_hostile_ones_refused() -> None:
    policy_set = load(TEMPLATE.replace("PARAMETERS", "{max: 5}"))
    generation = generate(policy_set, minor=30)
    spec = generation.documents[0]["spec"]
    assert spec["variables"][0]["name"] == "policyengineParams"
    assert [c["name"] for c in spec["matchConditions"]] == [
        "policyengine.io/kinds",
        "policyengine.io/excluded-namespaces",
    ]
    assert (
        verdicts(loaded_back(generation), Inventory())
        == verdicts(policy_set, Inventory())
        == ["allowed", "denied"]
    )

    infinite = generate(load(TEMPLATE.replace("PARAMETERS", "{max: .inf}")), minor=30)
    assert "has no CEL literal" in reasons(infinite)["cap"]
    deep = "{max: 5, x: " + "[" * 80 + "]" * 80 + "}"
    nested = generate(load(TEMPLATE.replace("PARAMETERS", deep)), minor=30)
    assert "nests more than 64 levels" in reasons(nested)["cap"]


def test_generated_names_are_dns_subdomains_unique_and_traceable() -> None:
    second = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: two}
spec: {policyName: p, validationActions: [Warn]}
"""
    generation = generate(load(vap("true") + second), minor=37)  # pairs named p/p and p/two
    names = [g.name for g in generation.generated]
    assert len(set(names)) == 2
    assert all(re.fullmatch(r"policyengine-p-[a-z0-9]+-[0-9a-f]{8}", n) for n in names), names
    sources = {d["metadata"]["annotations"]["policyengine.io/source-policy"] for d in generation.documents}
    assert sources == {"p/p", "p/two"}


@pytest.mark.parametrize("bad", ["1.29", "1.38", "2.0", "latest", ""])
def test_only_the_targeted_versions_parse(bad: str) -> None:
    with pytest.raises(ValueError, match=r"1\.30, 1\.31"):
        parse_minor(bad)
    assert parse_minor("v1.33.2") == 33


def test_the_webhook_scope_is_repeated_in_each_binding() -> None:
    from policyengine.vapgen import Scope

    scope = Scope(("kube-system", "policyengine"), "policyengine.io/exempt")
    (binding,) = [
        d
        for d in generate(load(vap("true")), minor=37, scope=scope).documents
        if d["kind"].endswith("Binding")
    ]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "policyengine"],
        },
        {"key": "policyengine.io/exempt", "operator": "NotIn", "values": ["true"]},
    ]
    decision = Engine(loaded_back(generate(load(vap("false")), minor=37, scope=scope))).evaluate(
        deployment(1),
        inventory=Inventory(
            namespaces={"a": {"metadata": {"name": "a", "labels": {"policyengine.io/exempt": "true"}}}}
        ),
        now=NOW,
    )
    assert all(r.outcome is not Outcome.FAIL for r in decision.results)


@pytest.mark.parametrize(
    "policy",
    [
        "K8sRequiredLabels/Must_Have",
        "a..b",
        "-.x.-",
        "x" * 300,
        ("label." * 80) + "end",
        "é/ü",
        "p.q" + "-" * 70 + "r",
    ],
)
def test_any_policy_name_becomes_a_valid_unique_name(policy: str) -> None:
    from policyengine.vapgen import _name

    used: set[str] = set()
    for static in (False, True):
        name = _name(policy, static, used)
        assert len(name) <= 253 and name.startswith("policyengine-")
        assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", label) for label in name.split(".")), (
            name
        )
        assert name.endswith(".static.k8s.io") == static
    assert _name(policy, False, used) != _name(policy + "x", False, used)
