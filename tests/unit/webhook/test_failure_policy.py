"""``webhook-config``'s failure policies, timeout and kinds: the ``policyengine.io/failure-policy``
annotation, ``--failure-policy``, ``--fail-open``, ``--timeout-seconds`` and ``--kinds``, and the clear
usage errors a malformed value gets."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from tests.unit.webhook.test_blast_radius import reached
from webhook.configuration import webhook_configuration


def _policy(name: str, kinds: str, annotation: str | None = None, groups: str = '"*"') -> str:
    notes = f"\n  annotations:\n    policyengine.io/failure-policy: {annotation}" if annotation else ""
    return (
        textwrap.dedent(
            f"""\
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata:
          name: {name}"""
        )
        + notes
        + textwrap.dedent(
            f"""
        spec:
          match:
            kinds: [{{apiGroups: [{groups}], kinds: [{kinds}]}}]
          validations:
            - expression: "true"
        """
        )
    )


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n")
    return path


def _run(
    ca: Path, tmp_path: Path, policies: list[str], flags: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, Any, str]:
    path = tmp_path / "policies.yaml"
    path.write_text("---\n".join(policies))
    args = ["webhook-config", "--service", "pe/pe", "--ca-bundle", str(ca), "--no-default-policies"]
    code = main([*args, "--policies", str(path), *flags])
    out, err = capsys.readouterr()
    return code, (yaml.safe_load(out) if code == 0 else None), err


def test_the_annotation_chooses_the_entry_and_fail_wins_an_overlap(
    ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pods = _policy("pods-strict", "Pod", "Fail", groups='""')
    ray = _policy("ray-lenient", "RayCluster", "Ignore", groups='"ray.io"')
    everything = _policy("everything", '"*"')  # ByKind: rayclusters Fail, pods Ignore
    code, doc, err = _run(ca, tmp_path, [pods, ray], [], capsys)
    assert code == 0, err
    assert [h["name"] for h in doc["webhooks"]] == [
        "validate.policyengine.io",
        "validate-open.policyengine.io",
    ]
    assert reached(doc, "CREATE", "", "pods") == ["Fail"]
    assert reached(doc, "CREATE", "ray.io", "rayclusters") == ["Ignore"]
    # With a policy that asks Fail for rayclusters (ByKind), the overlap fails closed: one entry, Fail.
    code, doc, err = _run(ca, tmp_path, [pods, ray, everything], [], capsys)
    assert code == 0, err
    assert reached(doc, "CREATE", "ray.io", "rayclusters") == ["Fail"]
    assert reached(doc, "CREATE", "", "pods") == ["Fail"]
    # Deployments are split by matchConditions between the two entries (test_match_conditions).
    assert reached(doc, "CREATE", "apps", "deployments") == ["Fail", "Ignore"]
    # --failure-policy sets the unannotated policies' choice; --fail-open overrides every annotation.
    code, doc, err = _run(ca, tmp_path, [everything], ["--failure-policy", "Fail"], capsys)
    assert code == 0 and [h["failurePolicy"] for h in doc["webhooks"]] == ["Fail"]
    code, doc, err = _run(ca, tmp_path, [pods, everything], ["--fail-open"], capsys)
    assert code == 0 and [h["failurePolicy"] for h in doc["webhooks"]] == ["Ignore"]
    assert doc["webhooks"][0]["name"] == "validate.policyengine.io"
    assert reached(doc, "CREATE", "", "pods") == ["Ignore"]


@pytest.mark.parametrize("value", ["fail", "Never", "''", "[Fail]", "x" * 5000])
def test_a_malformed_annotation_is_an_error_naming_the_file_and_field(
    value: str, ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(ca, tmp_path, [_policy("p", "Pod", value, groups='""')], [], capsys)
    assert code == 2, err
    assert "policies.yaml" in err and "policyengine.io/failure-policy" in err
    assert len(err) < 2000  # a hostile value is cut, not echoed


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--timeout-seconds", "11"], "--timeout-seconds must be 1..10"),
        (["--timeout-seconds", "0"], "--timeout-seconds must be 1..10"),
        (["--fail-open", "--failure-policy", "Fail"], "--fail-open and --failure-policy Fail"),
        (["--kinds", "RayClusters.ray.io"], "--kinds entry 1 'RayClusters.ray.io' is not RESOURCE.GROUP"),
        (["--kinds", "pods,deployments/scale.apps"], "--kinds entry 2"),
        (["--kinds", "jobs.-bad-.io"], "--kinds entry 1"),
        (["--kinds", "*"], "--kinds entry 1 '*'"),
        (["--kinds", "events"], "--kinds entry 1 'events' is a high-volume kind"),
        (["--kinds", "default,leases.coordination.k8s.io"], "high-volume"),
        (["--kinds", ","], "--kinds entry 1 ''"),
        (["--kinds", ",".join(["pods"] * 300)], "--kinds lists 300 entries; at most 256"),
        (["--kinds", "x" * 10_000], "--kinds entry 1"),
    ],
)
def test_malformed_flags_are_usage_errors_naming_the_flag(
    flags: list[str], said: str, ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(ca, tmp_path, [_policy("p", '"*"')], flags, capsys)
    assert code == 2 and said in err, err
    assert len(err) < 2000


def test_timeout_and_kinds_are_taken(ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    everything = _policy("everything", '"*"')
    code, doc, err = _run(ca, tmp_path, [everything], ["--timeout-seconds", "10"], capsys)
    assert code == 0 and {h["timeoutSeconds"] for h in doc["webhooks"]} == {10}, err
    flags = ["--kinds", "trainjobs.trainer.kubeflow.org", "--kinds", "pods,mycrds.example.com"]
    code, doc, err = _run(ca, tmp_path, [everything], flags, capsys)
    assert code == 0, err
    assert reached(doc, "CREATE", "trainer.kubeflow.org", "trainjobs") == ["Fail"]
    assert reached(doc, "CREATE", "", "pods") == ["Fail", "Ignore"]  # split by matchConditions
    assert reached(doc, "CREATE", "example.com", "mycrds") == ["Ignore"]
    assert reached(doc, "CREATE", "ray.io", "rayclusters") == []
    assert reached(doc, "CREATE", "apps", "deployments") == []
    # "default" keeps the built-in kinds and adds the CRD.
    code, doc, err = _run(ca, tmp_path, [everything], ["--kinds", "default,mycrds.example.com"], capsys)
    assert code == 0, err
    assert reached(doc, "CREATE", "ray.io", "rayclusters") == ["Fail"]
    assert reached(doc, "CREATE", "example.com", "mycrds") == ["Ignore"]


def test_markdown_prints_the_blast_radius(
    ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(_policy("p", "Pod", groups='""'))
    args = ["webhook-config", "--service", "pe/pe", "--ca-bundle", str(ca), "--no-default-policies"]
    assert main([*args, "--policies", str(path), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| validate-open.policyengine.io | Ignore | 5 | CREATE, UPDATE | `pods` |" in out
    assert "| validate.policyengine.io | Fail | 5 | CREATE, UPDATE | `pods` |" in out  # split
    assert "`policyengine.io/exempt` = `true`" in out


def test_resource_rule_wildcards_stand_for_the_workload_kinds_and_overlaps_fail_closed() -> None:
    """A ValidatingAdmissionPolicy's ``resources: ["*"]`` (and ``*/scale``) is narrowed like a ``*``
    kind; an Ignore rule that overlaps a Fail one (``deployments/*`` and ``deployments/scale``) moves to
    the Fail entry, so a request is never sent twice."""
    from policyengine.model import KindRule, Match, Policy, ResourceRule, SourceRef
    from webhook.configuration import FAIL, IGNORE, failure_policies

    def policy(match: Match, failure: str = "") -> Policy:
        return Policy(name="p", source=SourceRef("f"), match=match, webhook_failure_policy=failure)

    every = Match(resource_rules=(ResourceRule(("*",), ("v1",), ("*", "*/scale"), ("CREATE", "UPDATE")),))
    config = webhook_configuration([policy(every)], service_namespace="pe", service_name="pe", ca_bundle=b"")
    rules = [r for hook in config["webhooks"] for r in hook["rules"]]
    assert not [r for r in rules if "*" in r["apiGroups"] or any("*" in x for x in r["resources"])]
    assert reached(config, "CREATE", "ray.io", "rayclusters") == ["Fail"]
    assert reached(config, "UPDATE", "apps", "deployments/scale") == ["Ignore"]
    assert reached(config, "CREATE", "", "configmaps") == []
    assert {tuple(r["apiVersions"]) for r in rules} == {("v1",)}
    subresources = Match(resource_rules=(ResourceRule(("apps",), ("*",), ("deployments/*",), ("UPDATE",)),))
    scale = Match(kinds=(KindRule(("apps",), ("Deployment",)),))
    by = failure_policies([policy(subresources, "Ignore"), policy(scale, "Fail")])
    assert {r[3] for r in by[FAIL]} == {("deployments",), ("deployments/scale",), ("deployments/*",)}
    assert by[IGNORE] == set()
