"""Self-protection: the generated ValidatingAdmissionPolicy, loaded by our own VAP loader, judges real
UPDATE and DELETE AdmissionReviews of policyengine's objects as kube-apiserver would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.engine import Engine
from policyengine.loader import parse_text
from policyengine.model import Inventory, Outcome
from policyengine.policyset import build_policy_set
from policyengine.selfprotect import (
    MAX_IDENTITIES,
    STATIC_SUFFIX,
    ProtectedNames,
    protection_policies,
)
from webhook.configuration import CONFIGURATION_NAME
from webhook.review import parse_review

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NS = "policyengine"
ADMIN, ADMINS = "ops-admin@example.com", "platform-admins"
EDITOR = {"username": "alice", "groups": ["team-a-editors", "system:authenticated"]}

# (resource, group, version, kind, name, namespace) of each object the policy guards.
GUARDED = [
    ("deployments", "apps", "v1", "Deployment", "policyengine", NS),
    ("services", "", "v1", "Service", "policyengine", NS),
    ("secrets", "", "v1", "Secret", "policyengine-tls", NS),
    ("configmaps", "", "v1", "ConfigMap", "policyengine-policies", NS),
    ("configmaps", "", "v1", "ConfigMap", "policyengine-config", NS),
    ("configmaps", "", "v1", "ConfigMap", "policyengine-client-ca", NS),
]


def _object(kind: str, version: str, group: str, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": "0b5e3c1e-0000-4000-8000-000000000001"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": f"{group}/{version}" if group else version, "kind": kind, "metadata": meta, **spec}


def review(
    operation: str,
    resource: str,
    group: str,
    version: str,
    kind: str,
    name: str,
    namespace: str,
    user: dict[str, Any],
) -> dict[str, Any]:
    """An AdmissionReview as kube-apiserver sends it: UPDATE carries object and oldObject, DELETE only
    oldObject (and DeleteOptions)."""
    old = _object(kind, version, group, name, namespace, data={"before": "1"})
    new = _object(kind, version, group, name, namespace, data={"before": "2"})
    request: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name,
        "operation": operation,
        "userInfo": user,
        "object": new if operation != "DELETE" else None,
        "oldObject": old if operation in ("UPDATE", "DELETE") else None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if namespace:
        request["namespace"] = namespace
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def engine(docs: list[dict[str, Any]]) -> Engine:
    """The policy through our own loader, from the YAML it is written as."""
    text = yaml.safe_dump_all(docs)
    assert "&id" not in text, "no YAML anchors: each rule is its own object, as kubectl would print it"
    return Engine(build_policy_set(parse_text(text, "protect.yaml")))


def verdict(eng: Engine, data: dict[str, Any]) -> str:
    return eng.evaluate(parse_review(data).request, now=NOW).verdict


@pytest.fixture(scope="module")
def protected() -> Engine:
    return engine(
        protection_policies(namespace=NS, names=ProtectedNames(), allow_users=[ADMIN], allow_groups=[ADMINS])
    )


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
@pytest.mark.parametrize("target", GUARDED, ids=lambda t: f"{t[0]}/{t[4]}")
def test_a_workload_editor_cannot_change_or_delete_policyengine(
    protected: Engine, operation: str, target: tuple[str, ...]
) -> None:
    resource, group, version, kind, name, namespace = target
    data = review(operation, resource, group, version, kind, name, namespace, EDITOR)
    decision = protected.evaluate(parse_review(data).request, now=NOW)
    assert decision.verdict == "denied"
    (result,) = decision.results
    assert f"{operation} of {resource} {name} is refused" in result.message


def test_deleting_the_namespace_is_refused_but_editing_it_is_not(protected: Engine) -> None:
    target = ("namespaces", "", "v1", "Namespace", NS, "")
    assert verdict(protected, review("DELETE", *target, EDITOR)) == "denied"
    assert verdict(protected, review("UPDATE", *target, EDITOR)) == "allowed"
    assert verdict(
        protected, review("DELETE", "namespaces", "", "v1", "Namespace", "team-a", "", EDITOR)
    ) == ("allowed")


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
@pytest.mark.parametrize(
    "user",
    [
        {"username": ADMIN, "groups": ["system:authenticated"]},
        {"username": "bob", "groups": ["system:authenticated", ADMINS]},
    ],
    ids=["allowed-user", "allowed-group"],
)
def test_the_named_identities_may(protected: Engine, operation: str, user: dict[str, Any]) -> None:
    for target in [*GUARDED, ("namespaces", "", "v1", "Namespace", NS, "")]:
        assert verdict(protected, review(operation, *target, user)) == "allowed", target


@pytest.mark.parametrize(
    "target",
    [
        ("deployments", "apps", "v1", "Deployment", "trainer", NS),  # another object in the namespace
        ("deployments", "apps", "v1", "Deployment", "policyengine", "team-a"),  # same name, elsewhere
        ("configmaps", "", "v1", "ConfigMap", "policyengine-reservations", NS),  # the webhook's own writes
        ("secrets", "", "v1", "Secret", "policyengine-tls", "team-a"),
        ("pods", "", "v1", "Pod", "policyengine-7d9f", NS),
        (
            "validatingwebhookconfigurations",
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "other",
            "",
        ),
    ],
    ids=lambda t: f"{t[0]}/{t[5]}/{t[4]}",
)
def test_unrelated_objects_are_untouched(protected: Engine, target: tuple[str, ...]) -> None:
    for operation in ("UPDATE", "DELETE"):
        assert verdict(protected, review(operation, *target, EDITOR)) == "allowed"
        decision = protected.evaluate(parse_review(review(operation, *target, EDITOR)).request, now=NOW)
        assert {r.outcome for r in decision.results} <= {Outcome.SKIP}  # not matched, or matchCondition false


def test_creating_is_not_judged(protected: Engine) -> None:
    """First installs and re-creations are CREATE: the policy guards only what exists."""
    for target in GUARDED:
        assert verdict(protected, review("CREATE", *target, EDITOR)) == "allowed"


VWC = (
    "validatingwebhookconfigurations",
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingWebhookConfiguration",
    CONFIGURATION_NAME,
    "",
)


def test_the_api_based_policy_does_not_claim_the_webhook_configuration(protected: Engine) -> None:
    """kube-apiserver never calls API-based policies for admission configuration resources: the output
    must not pretend to guard them (deploy/README.md says RBAC does)."""
    (policy, _) = protection_policies(
        namespace=NS, names=ProtectedNames(), allow_users=[ADMIN], allow_groups=[]
    )
    resources = {r["resources"][0] for r in policy["spec"]["matchConstraints"]["resourceRules"]}
    assert resources == {
        "deployments",
        "services",
        "secrets",
        "configmaps",
        "pods/exec",
        "pods/ephemeralcontainers",
        "namespaces",
    }
    assert verdict(protected, review("DELETE", *VWC, EDITOR)) == "allowed"


def test_the_static_policy_guards_the_webhook_configuration_and_admission_policies() -> None:
    names = ProtectedNames(admission_policies=("policyengine-generated-max-gpus",))
    docs = protection_policies(namespace=NS, names=names, allow_users=[], allow_groups=[ADMINS], static=True)
    assert [d["metadata"]["name"].endswith(STATIC_SUFFIX) for d in docs] == [True, True]
    assert docs[1]["spec"]["policyName"] == docs[0]["metadata"]["name"]
    assert "paramKind" not in docs[0]["spec"] and "paramRef" not in docs[1]["spec"]
    eng = engine(docs)
    admin = {"username": "carol", "groups": [ADMINS]}
    for operation in ("UPDATE", "DELETE"):
        assert verdict(eng, review(operation, *VWC, EDITOR)) == "denied"
        assert verdict(eng, review(operation, *VWC, admin)) == "allowed"
        vap = (
            "validatingadmissionpolicies",
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "policyengine-generated-max-gpus",
            "",
        )
        assert verdict(eng, review(operation, *vap, EDITOR)) == "denied"
        other = (*vap[:4], "someone-elses", "")
        assert verdict(eng, review(operation, *other, EDITOR)) == "allowed"
        for target in GUARDED:
            assert verdict(eng, review(operation, *target, EDITOR)) == "denied"


def test_a_hostile_identity_is_a_literal_not_cel() -> None:
    """Identities are inlined into CEL: a quote in one cannot end the string and widen the check."""
    sneaky = "x' || true || '"
    eng = engine(
        protection_policies(
            namespace=NS, names=ProtectedNames(), allow_users=[sneaky, "a\\"], allow_groups=["g'"]
        )
    )
    target = GUARDED[0]
    assert verdict(eng, review("DELETE", *target, EDITOR)) == "denied"
    assert verdict(eng, review("DELETE", *target, {"username": sneaky, "groups": []})) == "allowed"
    assert verdict(eng, review("DELETE", *target, {"username": "a\\", "groups": []})) == "allowed"
    assert verdict(eng, review("DELETE", *target, {"username": "z", "groups": ["g'"]})) == "allowed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow_users": [], "allow_groups": []}, "name at least one identity"),
        ({"allow_users": ["a\nb"]}, "allow_users[0]: 'a\\nb' holds a control character"),
        ({"allow_users": [""]}, "allow_users[0]: a name of 1 to"),
        ({"allow_users": ["u" * 513]}, "allow_users[0]: a name of 1 to 512"),
        ({"allow_groups": [f"g{i}" for i in range(MAX_IDENTITIES + 1)]}, f"at most {MAX_IDENTITIES} names"),
        ({"allow_users": "root"}, "allow_users: a list of names, not the string 'root'"),
        ({"namespace": "Policy Engine"}, "namespace: 'Policy Engine' is not a Kubernetes object name"),
        ({"names": ProtectedNames(config_maps=("ok", "bad'name"))}, 'names.config_maps[1]: "bad\'name"'),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "namespace": NS,
        "names": ProtectedNames(),
        "allow_users": [ADMIN],
        "allow_groups": [],
    }
    with pytest.raises(ValueError) as err:
        protection_policies(**{**args, **kwargs})
    assert message in str(err.value)


def test_the_default_names_are_those_deploy_installs(repo_root: Path) -> None:
    docs = {}
    for path in sorted((repo_root / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    names = ProtectedNames()
    assert ("Namespace", NS) in docs
    assert names.webhook_configurations == (CONFIGURATION_NAME,)
    assert ("ValidatingWebhookConfiguration", CONFIGURATION_NAME) in docs
    deployment = docs[("Deployment", names.deployment)]
    assert deployment["metadata"]["namespace"] == NS
    assert docs[("Service", names.service)]["metadata"]["namespace"] == NS
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes if "secret" in v} == {names.tls_secret}
    mounted = {v["configMap"]["name"] for v in volumes if "configMap" in v}
    # The ConfigMaps the Deployment mounts, and the client CA one deploy/README.md has you create.
    assert set(names.config_maps) == mounted | {"policyengine-client-ca"}
    readme = (repo_root / "deploy" / "README.md").read_text()
    assert "kubectl -n policyengine create configmap policyengine-client-ca" in readme


def test_a_deletion_already_admitted_can_finish(protected: Engine) -> None:
    """The garbage collector's finalizer removal on an object being deleted, and the namespace
    controller's deletes in a terminating namespace, are not refused: the deletion itself was guarded."""
    gc = {"username": "system:serviceaccount:kube-system:generic-garbage-collector", "groups": []}
    data = review("UPDATE", *GUARDED[0], gc)
    data["request"]["oldObject"]["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"
    assert verdict(protected, data) == "allowed"
    assert verdict(protected, review("UPDATE", *GUARDED[0], gc)) == "denied"

    controller = {"username": "system:serviceaccount:kube-system:namespace-controller", "groups": []}
    request = parse_review(review("DELETE", *GUARDED[0], controller)).request
    live = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    terminating = {**live, "metadata": {**live["metadata"], "deletionTimestamp": "2026-12-05T12:00:00Z"}}
    assert protected.evaluate(request, inventory=Inventory(namespaces={NS: terminating}), now=NOW).allowed
    assert not protected.evaluate(request, inventory=Inventory(namespaces={NS: live}), now=NOW).allowed
    assert verdict(protected, review("DELETE", *GUARDED[0], controller)) == "denied"  # no namespace known


def _subresource(data: dict[str, Any], sub: str, kind: tuple[str, str, str]) -> dict[str, Any]:
    """``data`` as a request on a subresource, whose object is of another kind (a Scale, PodExecOptions)."""
    group, version, name = kind
    request = data["request"]
    request["subResource"] = sub
    request["kind"] = request["requestKind"] = {"group": group, "version": version, "kind": name}
    for key in ("object", "oldObject"):
        if request[key] is not None:
            request[key] = {
                **request[key],
                "apiVersion": f"{group}/{version}" if group else version,
                "kind": name,
            }
    return data


class _Deployments:
    """The parent lookup the webhook gives with --kube: the Deployment a scale request scales."""

    def get(self, group: str, version: str, resource: str, namespace: str, name: str) -> Any:
        assert (group, resource) == ("apps", "deployments")
        return _object("Deployment", version, group, name, namespace, spec={"replicas": 3})


def test_scaling_the_deployment_is_refused_to_an_editor(protected: Engine) -> None:
    """kubectl scale writes deployments/scale, which a rule on deployments alone never matches."""
    for user, expected in ((EDITOR, False), ({"username": ADMIN, "groups": []}, True)):
        data = _subresource(review("UPDATE", *GUARDED[0], user), "scale", ("autoscaling", "v1", "Scale"))
        data["request"]["object"]["spec"] = {"replicas": 0}
        request = parse_review(data).request
        assert protected.evaluate(request, now=NOW, parents=_Deployments()).allowed is expected
        # The policy matches the scale request itself, as kube-apiserver calls it (not only its parent).
        assert [p.name for p in protected.applicable(request)] == ["policyengine-protect"]


def test_no_editor_execs_into_the_webhook_but_rollouts_still_replace_its_pods(protected: Engine) -> None:
    pod = ("pods", "", "v1", "Pod", "policyengine-7d9f4-x2x9q", NS)
    options = ("", "v1", "PodExecOptions")
    for sub in ("exec", "attach", "portforward"):
        assert verdict(protected, _subresource(review("CONNECT", *pod, EDITOR), sub, options)) == "denied", (
            sub
        )
        elsewhere = (*pod[:5], "team-a")
        assert (
            verdict(protected, _subresource(review("CONNECT", *elsewhere, EDITOR), sub, options)) == "allowed"
        )
    rs = {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []}
    assert verdict(protected, review("DELETE", *pod, rs)) == "allowed"


def _break_glass(repo_root: Path) -> str:
    readme = (repo_root / "deploy" / "README.md").read_text()
    start = readme.index("\n## Break glass\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    return section[section.index("\n### When self-protection is installed\n") :]


def test_the_break_glass_steps_with_protection_do_what_they_say(repo_root: Path) -> None:
    """deploy/README.md's steps: the impersonated restart passes as the allowed identity it names and
    not as an editor; deleting the binding it names leaves the policy inert; the names it lists are
    the ones the policy guards."""
    import shlex

    section = _break_glass(repo_root)
    block = section.split("```sh\n")[1].split("```")[0]
    commands = [shlex.split(line) for line in block.splitlines() if line.startswith("kubectl ")]
    restart, unbind = commands
    who = restart[1].removeprefix("--as=")
    assert restart[2:] == ["-n", NS, "rollout", "restart", "deployment/policyengine"]
    docs = protection_policies(namespace=NS, names=ProtectedNames(), allow_users=[who], allow_groups=[])
    # rollout restart is a patch of the Deployment's pod template: an UPDATE.
    target = ("deployments", "apps", "v1", "Deployment", restart[-1].split("/")[1], NS)
    assert verdict(engine(docs), review("UPDATE", *target, {"username": who, "groups": []})) == "allowed"
    assert verdict(engine(docs), review("UPDATE", *target, EDITOR)) == "denied"

    assert unbind[1:3] == ["delete", "validatingadmissionpolicybinding"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert unbind[3] == binding["metadata"]["name"]
    unbound = [d for d in docs if d is not binding]
    assert verdict(engine(unbound), review("UPDATE", *target, EDITOR)) == "allowed"

    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    assert f"`{policy['metadata']['name']}`" in section
    static = protection_policies(
        namespace=NS, names=ProtectedNames(), allow_users=[who], allow_groups=[], static=True
    )
    assert f"`{static[0]['metadata']['name']}`" in section
    for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
        for name in rule.get("resourceNames", []):
            assert f"`{name}`" in section, name
