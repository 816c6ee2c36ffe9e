"""gpu-dra-admin-access decides CREATE and UPDATE of ResourceClaims, ResourceClaimTemplates and Namespaces:
the webhook configuration generated from the policy alone, from the gpu-quotas pack and the one shipped
in deploy/ all send them (a Namespace is cluster-scoped, so the rule's scope must allow it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.policyset import bundled_policies_dir, load_policy_set
from webhook.configuration import webhook_configuration

POLICY = "gpu-dra-admin-access"
DECIDED = [
    ("resource.k8s.io", "resourceclaims"),
    ("resource.k8s.io", "resourceclaimtemplates"),
    ("", "namespaces"),
]


def _sends(rules: list[dict[str, Any]], operation: str, group: str, resource: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return any(
        has(r["operations"], operation)
        and has(r["apiGroups"], group)
        and has(r["resources"], resource)
        and r["scope"] in ("*", "Cluster" if resource == "namespaces" else "Namespaced")
        for r in rules
    )


def _rules(only_admin_access: bool) -> list[dict[str, Any]]:
    policies = load_policy_set([str(bundled_policies_dir() / "gpu-quotas")], include_bundled=False).policies
    if only_admin_access:
        policies = tuple(p for p in policies if p.name == POLICY)
        assert len(policies) == 1
    config = webhook_configuration(policies, service_namespace="pe", service_name="pe", ca_bundle=b"ca")
    return [rule for hook in config["webhooks"] for rule in hook["rules"]]  # every entry


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_claims_templates_and_namespaces_reach_the_webhook(repo_root: Path, operation: str) -> None:
    (shipped,) = yaml.safe_load_all((repo_root / "deploy" / "webhook.yaml").read_text())
    shipped_rules = [rule for hook in shipped["webhooks"] for rule in hook["rules"]]
    for rules in (_rules(True), _rules(False), shipped_rules):
        missing = [(g, r) for g, r in DECIDED if not _sends(rules, operation, g, r)]
        assert missing == [], f"{operation} of {missing} never reaches the webhook: {rules}"


def test_the_policy_alone_asks_for_nothing_else() -> None:
    rules = _rules(True)
    assert not _sends(rules, "CREATE", "apps", "deployments")
    assert not any(_sends(rules, op, "", "namespaces") for op in ("DELETE", "CONNECT"))
