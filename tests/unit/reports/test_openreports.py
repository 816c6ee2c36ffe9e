"""The OpenReports builder: statuses, the per-report bound, and validity against the CRD schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from policyengine.codec import request_from_manifest
from policyengine.model import Action, Decision, Outcome, Result, SourceRef
from policyengine.reports import openreports

NOW = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def decision(name: str, namespace: str, *results: Result) -> Decision:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-" + name},
    }
    request = request_from_manifest(obj, operation="CREATE", user=None, uid=name, source=SourceRef("f"))
    return Decision(request=request, results=results, allowed=True, policy_set_digest="d")


def result(outcome: Outcome, action: Action = Action.DENY, exception: str | None = None) -> Result:
    return Result(
        policy="p",
        action=action,
        outcome=outcome,
        message="m",
        validation=0,
        severity="Critical",
        exception=exception,
    )


def schema(shared: Path, kind: str) -> Any:
    name = "openreports.io_reports.yaml" if kind == "Report" else "openreports.io_clusterreports.yaml"
    crd = yaml.safe_load((shared / "vectors" / "openreports" / name).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_each_outcome_maps_to_a_report_status(shared: Path) -> None:
    d = decision(
        "a",
        "ns",
        result(Outcome.PASS),
        result(Outcome.FAIL),
        result(Outcome.FAIL, Action.WARN),
        result(Outcome.FAIL, Action.AUDIT),
        result(Outcome.ERROR),
        result(Outcome.EXCEPTED, exception="legacy"),
    )
    (report,) = openreports.build_reports([d], now=NOW)
    assert [r["result"] for r in report["results"]] == ["error", "fail", "fail", "warn", "skip", "pass"]
    assert report["summary"] == {"pass": 1, "fail": 2, "warn": 1, "error": 1, "skip": 1}
    skipped = next(r for r in report["results"] if r["result"] == "skip")
    assert skipped["properties"]["exception"] == "legacy" and skipped["severity"] == "critical"
    assert skipped["timestamp"] == {"seconds": int(NOW.timestamp()), "nanos": 250000000}
    jsonschema.Draft7Validator(schema(shared, "Report")).validate(report)


def test_a_report_keeps_at_most_max_results_worst_first_and_counts_them_all(shared: Path) -> None:
    many = [
        decision(f"pod-{i}", "big", result(Outcome.PASS if i % 10 else Outcome.FAIL)) for i in range(2500)
    ]
    (report,) = openreports.build_reports(many, now=NOW)
    assert len(report["results"]) == openreports.MAX_RESULTS
    assert report["configuration"] == {"limits": {"maxResults": openreports.MAX_RESULTS}}
    assert report["summary"]["fail"] == 250 and report["summary"]["pass"] == 2250
    assert [r["result"] for r in report["results"][:250]] == ["fail"] * 250
    jsonschema.Draft7Validator(schema(shared, "Report")).validate(report)


def test_cluster_scoped_objects_go_to_one_cluster_report(shared: Path) -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    request = request_from_manifest(obj, operation="CREATE", user=None, uid="n", source=SourceRef("f"))
    d = Decision(request=request, results=(result(Outcome.FAIL),), allowed=False, policy_set_digest="d")
    reports = openreports.build_reports([d, decision("a", "ns", result(Outcome.PASS))], now=NOW)
    assert [r["kind"] for r in reports] == ["Report", "ClusterReport"]
    jsonschema.Draft7Validator(schema(shared, "ClusterReport")).validate(reports[1])
