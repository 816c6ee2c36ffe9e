"""OpenReports (``openreports.io/v1alpha1``): decisions -> one Report per namespace and one ClusterReport
for cluster-scoped objects, the policy-report format Policy Reporter and Kyverno read.

Each policy result of each object is one report result: ``pass``, ``fail`` (a deny or audit finding),
``warn`` (a warn finding), ``error`` (not evaluable) or ``skip`` (excepted: the exception is named in
``properties``). A report keeps at most ``MAX_RESULTS`` results, the worst first, and says so in
``configuration.limits.maxResults``; its summary counts every result, kept or not, so an oversized
namespace cannot push a report past what the API server stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from policyengine.model import Action, Decision, Outcome, Result

API_VERSION = "openreports.io/v1alpha1"
SOURCE = "policyengine"
REPORT_NAME = "policyengine"  # one per namespace: the namespace scopes it; the ClusterReport has it too
MANAGED_BY = {"app.kubernetes.io/managed-by": "policyengine"}
MAX_RESULTS = 1000  # ~1 KiB a result: well under etcd's 1.5 MiB object limit
STATUSES = ("pass", "fail", "warn", "error", "skip")
_SEVERITIES = frozenset({"critical", "high", "medium", "low", "info"})
_WORST_FIRST = {"error": 0, "fail": 1, "warn": 2, "skip": 3, "pass": 4}


def status_of(result: Result) -> str:
    """The OpenReports status of one of our results."""
    if result.outcome is Outcome.FAIL:
        return "warn" if result.action is Action.WARN else "fail"
    if result.outcome is Outcome.EXCEPTED:
        return "skip"
    return str(result.outcome)  # pass | error | skip


def build_reports(decisions: Iterable[Decision], *, now: datetime) -> list[dict[str, Any]]:
    """The Reports (one per namespace holding a result, sorted by namespace) then the ClusterReport (when
    a cluster-scoped object has a result) for these decisions, stamped ``now``."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    stamp = {"seconds": int(now.timestamp()), "nanos": now.microsecond * 1000}
    for decision in decisions:
        resource = resource_ref(decision)
        for result in decision.results:
            entry = report_result(result, resource, stamp)
            by_namespace.setdefault(decision.request.namespace, []).append(entry)
    reports = [report(namespace, results) for namespace, results in sorted(by_namespace.items()) if namespace]
    if "" in by_namespace:
        reports.append(report("", by_namespace[""]))
    return reports


def resource_ref(decision: Decision) -> dict[str, str]:
    """The object reference of a report result: apiVersion, kind, namespace, name, uid, resourceVersion."""
    request = decision.request
    obj: Mapping[str, Any] = request.object if isinstance(request.object, Mapping) else {}
    raw_meta = obj.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    gvk = request.kind
    ref = {
        "apiVersion": str(
            obj.get("apiVersion") or (f"{gvk.group}/{gvk.version}" if gvk.group else gvk.version)
        ),
        "kind": gvk.kind,
        "namespace": request.namespace,
        "name": request.name,
        "uid": str(meta.get("uid") or ""),
        "resourceVersion": str(meta.get("resourceVersion") or ""),
    }
    return {k: v for k, v in ref.items() if v}


def report_result(result: Result, resource: dict[str, str], stamp: dict[str, int]) -> dict[str, Any]:
    properties = {
        "action": str(result.action),
        "outcome": str(result.outcome),
        "exception": result.exception or "",
        "code": result.code or "",
        "fieldPath": result.field_path or "",
        "remediation": result.remediation if result.outcome is not Outcome.PASS else "",
    }
    out: dict[str, Any] = {
        "source": SOURCE,
        "policy": result.policy,
        "rule": f"validations[{result.validation}]" if result.validation is not None else result.policy,
        "result": status_of(result),
        "message": result.message,
        "resources": [resource],
        "timestamp": stamp,
        "scored": True,
        "properties": {k: v for k, v in properties.items() if v},
    }
    if result.category:
        out["category"] = result.category
    if result.severity.lower() in _SEVERITIES:
        out["severity"] = result.severity.lower()
    return out


def report(namespace: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One Report (a namespace's) or the ClusterReport (``namespace`` "")."""
    summary = dict.fromkeys(STATUSES, 0)
    for entry in results:
        summary[entry["result"]] += 1
    kept = sorted(results, key=_order)[:MAX_RESULTS]
    metadata: dict[str, Any] = {"name": REPORT_NAME, "labels": dict(MANAGED_BY)}
    if namespace:
        metadata["namespace"] = namespace
    out: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Report" if namespace else "ClusterReport",
        "metadata": metadata,
        "source": SOURCE,
        "summary": summary,
        "results": kept,
    }
    if len(results) > MAX_RESULTS:
        out["configuration"] = {"limits": {"maxResults": MAX_RESULTS}}
    return out


def _order(entry: dict[str, Any]) -> tuple[int, str, str, str]:
    ref = entry["resources"][0]
    return (_WORST_FIRST[entry["result"]], ref.get("kind", ""), ref.get("name", ""), entry["policy"])


def render(reports: list[dict[str, Any]]) -> str:
    """The reports as a ``List`` in JSON (what ``kubectl apply -f`` takes), one line per report."""
    items = ",\n".join(json.dumps(r, sort_keys=True) for r in reports)
    return '{"apiVersion": "v1", "kind": "List", "items": [\n' + items + "\n]}\n"
