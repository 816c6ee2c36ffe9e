"""``policyengine generate vap`` and ``webhook-config --exclude-generated`` as users run them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from tests.unit.core.test_selfprotect import engine, review, verdict
from tests.unit.vapgen.test_generate import NATIVE, TEMPLATE, vap

POLICIES = vap("object.spec.replicas < 9", name="replicas") + NATIVE.format(
    name="gpus", expression="workload.gpus.total < 9"
)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES)
    return path


def test_generate_vap_writes_the_policies_and_lists_what_stays(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "vap", "--no-default-policies", "--policies", str(policies)])
    out, err = capsys.readouterr()
    assert code == 0
    header = out.splitlines()[:2]
    assert header[0] == "# policyengine generate vap (Kubernetes 1.30+): 1 generated, 1 stay on the webhook"
    assert header[1].startswith(f"#   gpus ({policies}:") and "reads the view 'workload'" in header[1]
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    excluded = docs[1]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert excluded == ["kube-node-lease", "kube-public", "kube-system", "policyengine"]
    assert err == "policyengine: 1 policies generated, 1 stay on the webhook\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--kubernetes-version", "1.29"],
            "--kubernetes-version: Kubernetes version '1.29' is not one of 1.30",
        ),
        (["--static", "--kubernetes-version", "1.35"], "--static: manifest-based admission control"),
    ],
)
def test_bad_options_are_usage_errors(
    policies: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "vap", "--no-default-policies", "--policies", str(policies), *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_static_output_goes_to_a_file(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "static.yaml"
    argv = ["generate", "vap", "--no-default-policies", "--policies", str(policies), "--static"]
    assert main([*argv, "--kubernetes-version", "1.36", "-o", str(out)]) == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(out.read_text())]
    assert names and all(n.endswith(".static.k8s.io") for n in names)


def _rules(policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> set[str]:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    argv = ["webhook-config", "--service", "policyengine/policyengine", "--ca-bundle", str(ca)]
    assert (
        main([*argv, "--no-default-policies", "--policies", str(policies), "--format", "json", *flags]) == 0
    )
    doc = yaml.safe_load(capsys.readouterr().out)
    return {r for w in doc["webhooks"] for rule in w["rules"] for r in rule["resources"]}


def test_webhook_config_leaves_the_generated_policies_off_the_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "only-vap.yaml"
    path.write_text(vap("object.spec.replicas < 9", name="replicas"))
    assert "deployments" in _rules(path, tmp_path, capsys)
    assert "deployments" not in _rules(path, tmp_path, capsys, "--exclude-generated")
    # At a version without the function it calls, the policy is not generated and stays on the webhook.
    semver = tmp_path / "semver.yaml"
    semver.write_text(vap("semver('1.0.0').major() == 1", name="semver"))
    kept = _rules(semver, tmp_path, capsys, "--exclude-generated", "--kubernetes-version", "1.32")
    assert "deployments" in kept
    gone = _rules(semver, tmp_path, capsys, "--exclude-generated", "--kubernetes-version", "1.33")
    assert "deployments" not in gone


def test_the_scale_requests_of_a_generated_kind_policy_stay_on_the_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kubectl scale`` reaches the API server as a Scale, which only the webhook judges as the workload's
    UPDATE: the generated policy leaves the webhook but for that."""
    path = tmp_path / "constraint.yaml"
    path.write_text(TEMPLATE.replace("PARAMETERS", "{max: 5}"))
    before = _rules(path, tmp_path, capsys)
    assert {"deployments", "deployments/scale"} <= before
    after = _rules(path, tmp_path, capsys, "--exclude-generated")
    assert "deployments" not in after
    assert "deployments/scale" in after


def _generate_protected(
    policies: Path, *flags: str, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    code = main(["generate", "vap", "--no-default-policies", "--policies", str(policies), *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [d for d in yaml.safe_load_all(out) if d]


def test_protect_adds_the_self_protection_policy_that_refuses_editors(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _generate_protected(
        policies,
        "--protect",
        "--protect-allow",
        "user:ops@example.com",
        "--protect-allow",
        "group:sre",
        capsys=capsys,
    )
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert names[-2:] == [
        ("ValidatingAdmissionPolicy", "policyengine-protect"),
        ("ValidatingAdmissionPolicyBinding", "policyengine-protect"),
    ]
    eng = engine(docs[-2:])
    editor = {"username": "dev@example.com", "groups": ["system:authenticated"]}
    ops = {"username": "ops@example.com", "groups": ["system:authenticated"]}
    sre = {"username": "someone", "groups": ["sre"]}
    args = ("deployments", "apps", "v1", "Deployment", "policyengine", "policyengine")
    assert verdict(eng, review("UPDATE", *args, editor)) == "denied"
    assert verdict(eng, review("DELETE", *args, editor)) == "denied"
    assert verdict(eng, review("UPDATE", *args, ops)) == "allowed"
    assert verdict(eng, review("DELETE", *args, sre)) == "allowed"


def test_static_protect_also_guards_the_generated_policies(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("--static", "--kubernetes-version", "1.36", "--protect", "--protect-allow", "user:ops")
    docs = _generate_protected(policies, *flags, capsys=capsys)
    generated = {d["metadata"]["name"] for d in docs[:-2]}
    guard = docs[-2]
    assert guard["metadata"]["name"] == "policyengine-protect.static.k8s.io"
    guarded = {
        name
        for rule in guard["spec"]["matchConstraints"]["resourceRules"]
        if rule["resources"][0].startswith("validatingadmissionpolic")
        for name in rule["resourceNames"]
    }
    assert generated and generated <= guarded


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--protect"], "--protect: allow_users/allow_groups: name at least one identity"),
        (
            ["--protect", "--protect-allow", "ops"],
            "--protect-allow #1 takes user:NAME or group:NAME, not 'ops'",
        ),
        (
            ["--protect", "--protect-allow", "user:ops", "--protect-allow", "team:x"],
            "--protect-allow #2 takes",
        ),
        (["--protect-allow", "user:ops"], "--protect-allow needs --protect"),
        (["--protect", "--protect-allow", "user:a\nb"], "--protect: allow_users"),
    ],
)
def test_bad_protect_options_are_usage_errors(
    policies: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "vap", "--no-default-policies", "--policies", str(policies), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
