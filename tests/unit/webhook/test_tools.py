"""``policyengine certs`` and ``policyengine webhook-config``."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from policyengine.cli import main
from tests.unit.webhook.builders import write_policies


def test_certs_writes_a_ca_and_a_p256_serving_certificate_with_every_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tls"
    assert main(["certs", "--out", str(out), "--dns", "policyengine.ns.svc", "--dns", "127.0.0.1"]) == 0
    capsys.readouterr()
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    key = (out / "tls.key").read_bytes()
    assert b"PRIVATE KEY" in key and (out / "tls.key").stat().st_mode & 0o077 == 0
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["policyengine.ns.svc"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def _config(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["webhook-config", *args]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_webhook_config_derives_rules_from_the_loaded_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["certs", "--out", str(tmp_path / "tls"), "--dns", "x.svc"])
    capsys.readouterr()
    policies = write_policies(tmp_path / "p").parent
    ca = tmp_path / "tls" / "ca.crt"
    args = [
        "--service",
        "pe/webhook",
        "--ca-bundle",
        str(ca),
        "--no-default-policies",
        "--policies",
        str(policies),
    ]
    doc = _config([*args, "--failure-policy", "Fail"], capsys)
    (hook,) = doc["webhooks"]  # type: ignore[index]
    assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None" and hook["timeoutSeconds"] == 5
    assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert hook["clientConfig"]["service"] == {
        "namespace": "pe",
        "name": "webhook",
        "path": "/validate",
        "port": 443,
    }
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca.read_bytes()
    expr, exempt = hook["namespaceSelector"]["matchExpressions"]
    assert expr["operator"] == "NotIn" and expr["key"] == "kubernetes.io/metadata.name"
    assert set(expr["values"]) == {"kube-system", "kube-public", "kube-node-lease", "pe"}
    assert exempt == {"key": "policyengine.io/exempt", "operator": "NotIn", "values": ["true"]}
    (rule,) = hook["rules"]
    assert rule["resources"] == ["configmaps", "pods"] and rule["apiGroups"] == [""]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert _config([*args, "--fail-open"], capsys)["webhooks"][0]["failurePolicy"] == "Ignore"  # type: ignore[index]
    # By default (ByKind) configmaps fail open; pods go to both entries, whose matchConditions send a
    # pod asking for accelerators to the Fail one (test_match_conditions).
    closed, default = _config(args, capsys)["webhooks"]  # type: ignore[index]
    assert default["failurePolicy"] == "Ignore" and default["rules"] == hook["rules"]
    assert closed["failurePolicy"] == "Fail" and [r["resources"] for r in closed["rules"]] == [["pods"]]
    assert closed["matchConditions"] and default["matchConditions"]


@pytest.mark.parametrize("service", ["noslash", "/name", "ns/", "a/b/c"])
def test_webhook_config_refuses_a_bad_service(
    service: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert main(["webhook-config", "--service", service, "--ca-bundle", str(ca)]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err


def test_rules_are_merged_and_a_broader_rule_absorbs_narrower_ones() -> None:
    from policyengine.model import KindRule, Match, Policy, ResourceRule, SourceRef
    from webhook.configuration import merged_rules

    def policy(match: Match) -> Policy:
        return Policy(name="p", source=SourceRef("f"), match=match)

    apps = Match(kinds=(KindRule(("apps",), ("Deployment", "StatefulSet")),))
    status = Match(resource_rules=(ResourceRule(("",), ("v1",), ("pods/status",), ("UPDATE",)),))
    assert merged_rules([policy(apps), policy(status)]) == [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": ["apps"],
            "apiVersions": ["*"],
            "resources": ["deployments", "statefulsets"],
            "scope": "*",
        },
        {
            "operations": ["UPDATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods/status"],
            "scope": "*",
        },
        {
            "operations": ["UPDATE"],
            "apiGroups": ["apps"],
            "apiVersions": ["*"],
            "resources": ["deployments/scale", "statefulsets/scale"],
            "scope": "*",
        },
    ]
    # "*" stands for the workload kinds (webhook.scope), which cover the apps rule: one rule per group.
    everything = Match(kinds=(KindRule(("*",), ("*",)),))
    rules = merged_rules([policy(apps), policy(everything)])
    assert rules == merged_rules([policy(everything)])
    apps_rule = next(
        r for r in rules if r["apiGroups"] == ["apps"] and r["operations"] == ["CREATE", "UPDATE"]
    )
    assert apps_rule["resources"] == ["daemonsets", "deployments", "replicasets", "statefulsets"]
    scales = [r for r in rules if any(x.endswith("/scale") for x in r["resources"])]
    assert scales and all(s["operations"] == ["UPDATE"] for s in scales)
    # Subresources stay: the pods/status rule is kept beside the workload kinds.
    assert len(merged_rules([policy(everything), policy(status)])) == len(rules) + 1


def test_scale_subresources_of_the_workloads_are_sent_on_update() -> None:
    """``kubectl scale`` and autoscalers change replicas through ``<workload>/scale``: the bundled packs'
    configuration asks for those UPDATEs, so a scale-up cannot walk past the GPU quotas."""
    from policyengine.policyset import load_policy_set
    from webhook.configuration import merged_rules

    sent = {
        (group, resource)
        for rule in merged_rules(load_policy_set([]).policies)
        if "UPDATE" in rule["operations"] or "*" in rule["operations"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert {
        ("apps", "deployments/scale"),
        ("apps", "statefulsets/scale"),
        ("apps", "replicasets/scale"),
        ("leaderworkerset.x-k8s.io", "leaderworkersets/scale"),
    } <= sent


def test_a_create_only_or_non_workload_policy_asks_for_no_scale() -> None:
    from policyengine.model import KindRule, Match, Policy, SourceRef
    from webhook.configuration import merged_rules

    def policy(match: Match) -> Policy:
        return Policy(name="p", source=SourceRef("f"), match=match)

    creates = Match(kinds=(KindRule(("*",), ("*",)),), operations=("CREATE",))
    pods = Match(kinds=(KindRule(("",), ("Pod",)),))
    rules = merged_rules([policy(creates), policy(pods)])
    assert not [r for r in rules if any(x.endswith("/scale") for x in r["resources"])]
