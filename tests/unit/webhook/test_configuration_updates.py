"""The GPU quotas charge UPDATEs with what they add, which holds only if kube-apiserver sends them:
the webhook configuration the gpu-quotas pack asks for, and the one shipped in deploy/, send CREATE and
UPDATE of every workload kind the workload view reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.match import plural
from policyengine.policyset import bundled_policies_dir, load_policy_set
from webhook.configuration import webhook_configuration

# (API group, kind) of the workloads whose GPUs the view counts.
WORKLOADS = [
    ("", "Pod"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "ReplicaSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    *(("kubeflow.org", k) for k in ("PyTorchJob", "TFJob", "PaddleJob", "XGBoostJob", "JAXJob", "MPIJob")),
    ("trainer.kubeflow.org", "TrainJob"),
    *(("ray.io", k) for k in ("RayCluster", "RayJob", "RayService")),
    ("serving.kserve.io", "InferenceService"),
    ("serving.kserve.io", "LLMInferenceService"),
    ("jobset.x-k8s.io", "JobSet"),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
    ("batch.volcano.sh", "Job"),
]


def _sends(rules: list[dict[str, Any]], operation: str, group: str, resource: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return any(
        has(r["operations"], operation) and has(r["apiGroups"], group) and has(r["resources"], resource)
        for r in rules
    )


def _gpu_pack_rules() -> list[dict[str, Any]]:
    policies = load_policy_set([str(bundled_policies_dir() / "gpu-quotas")], include_bundled=False).policies
    config = webhook_configuration(policies, service_namespace="pe", service_name="pe", ca_bundle=b"ca")
    return [rule for hook in config["webhooks"] for rule in hook["rules"]]  # every entry


def _shipped_rules(repo_root: Path) -> list[dict[str, Any]]:
    (doc,) = yaml.safe_load_all((repo_root / "deploy" / "webhook.yaml").read_text())
    return [rule for hook in doc["webhooks"] for rule in hook["rules"]]  # every entry


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_the_gpu_pack_and_the_shipped_configuration_send_every_workload(
    repo_root: Path, operation: str
) -> None:
    for rules in (_gpu_pack_rules(), _shipped_rules(repo_root)):
        missing = [(g, k) for g, k in WORKLOADS if not _sends(rules, operation, g, plural(k))]
        assert missing == [], f"{operation} of {missing} never reaches the webhook: {rules}"


def test_delete_and_connect_are_not_asked_for_by_the_gpu_pack() -> None:
    rules = _gpu_pack_rules()
    assert not any(_sends(rules, op, "apps", "deployments") for op in ("DELETE", "CONNECT"))
