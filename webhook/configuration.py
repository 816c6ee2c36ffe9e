"""The ValidatingWebhookConfiguration that sends kube-apiserver's requests to ``policyengine serve``.

Rules are derived from what the loaded policies match, so the API server only calls the webhook for
requests some policy may decide: resource rules as written (with their operations), ``match.kinds``
turned into plural resources (``match.plural``) with the policy's operations (default CREATE, UPDATE).
A policy without match rules matches everything and so asks for every resource. A policy whose kinds
cover a workload with a ``scale`` subresource (Deployment, StatefulSet, ReplicaSet, ReplicationController,
LeaderWorkerSet) on UPDATE also asks for ``<plural>/scale`` UPDATEs: ``kubectl scale`` and autoscalers
change replicas there, and the webhook judges them as the workload's UPDATE. System namespaces and
the webhook's own namespace are excluded, so the webhook can never block its own recovery.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from policyengine.match import DEFAULT_OPERATIONS, plural
from policyengine.model import Match, Policy
from policyengine.scale import REPLICAS_AT, SUBRESOURCE

WEBHOOK_NAME = "validate.policyengine.io"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
TIMEOUT_SECONDS = 5

Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], str]


def _ops(operations: Iterable[str]) -> tuple[str, ...]:
    ops = tuple(operations)
    return ("*",) if "*" in ops else tuple(sorted(set(ops)))


def rules_for(match: Match) -> set[Rule]:
    """(operations, apiGroups, apiVersions, resources, scope) tuples covering ``match``."""
    rules: set[Rule] = set()
    for r in match.resource_rules:
        rules.add(
            (_ops(r.operations), tuple(r.api_groups), tuple(r.api_versions), tuple(r.resources), r.scope)
        )
    for k in match.kinds:
        resources = ("*",) if "*" in k.kinds else tuple(sorted({plural(kind) for kind in k.kinds}))
        ops = _ops(match.operations or DEFAULT_OPERATIONS)
        rules.add((ops, tuple(k.api_groups), ("*",), resources, "*"))
        if "*" in ops or "UPDATE" in ops:
            rules |= _scale_rules(k.api_groups, k.kinds)
    if not match.resource_rules and not match.kinds:
        ops = _ops(match.operations or ("*",))
        rules.add((ops, ("*",), ("*",), ("*",), "*"))
        if "*" in ops or "UPDATE" in ops:
            rules |= _scale_rules(("*",), ("*",))
    return rules


def _scale_rules(groups: Iterable[str], kinds: Iterable[str]) -> set[Rule]:
    """UPDATE rules for the scale subresource of the workload kinds covered by ``groups`` x ``kinds``."""
    groups, kinds = set(groups), set(kinds)
    rules: set[Rule] = set()
    for (group, resource), (kind, _) in REPLICAS_AT.items():
        if ("*" in groups or group in groups) and ("*" in kinds or kind in kinds):
            rules.add((("UPDATE",), (group,), ("*",), (f"{resource}/{SUBRESOURCE}",), "*"))
    return rules


def merged_rules(policies: Iterable[Policy]) -> list[dict[str, Any]]:
    """Distinct rules; rules that differ only in resources are merged into one."""
    grouped: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str], set[str]] = {}
    for policy in policies:
        for ops, groups, versions, resources, scope in rules_for(policy.match):
            grouped.setdefault((ops, tuple(sorted(groups)), tuple(sorted(versions)), scope), set()).update(
                resources
            )
    out = []
    for (ops, groups, versions, scope), wanted in sorted(grouped.items()):
        if any(
            other != (ops, groups, versions, scope)
            and _covers(other[0], ops)
            and _covers(other[1], groups)
            and _covers(other[2], versions)
            and other[3] in ("*", scope)
            and _covers_resources(found, wanted)
            for other, found in grouped.items()
        ):
            continue  # a broader rule already sends these requests
        rule: dict[str, Any] = {
            "operations": list(ops),
            "apiGroups": list(groups),
            "apiVersions": list(versions),
            "resources": _resources(wanted),
            "scope": scope,
        }
        out.append(rule)
    return out


def _covers(broad: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    return "*" in broad or set(narrow) <= set(broad)


def _covers_resources(broad: set[str], narrow: set[str]) -> bool:
    """``*`` stands for every resource but no subresource; ``*/*`` for everything."""
    if "*/*" in broad:
        return True
    return all(r in broad or ("*" in broad and "/" not in r) for r in narrow)


def _resources(wanted: set[str]) -> list[str]:
    if "*/*" in wanted:
        return ["*/*"]
    if "*" in wanted:
        return ["*", *sorted(r for r in wanted if "/" in r)]
    return sorted(wanted)


def webhook_configuration(
    policies: Iterable[Policy],
    *,
    service_namespace: str,
    service_name: str,
    ca_bundle: bytes,
    fail_open: bool = False,
    path: str = "/validate",
    port: int = 443,
) -> dict[str, Any]:
    excluded = sorted({*SYSTEM_NAMESPACES, service_namespace})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policyengine", "labels": {"app.kubernetes.io/name": "policyengine"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1", "v1beta1"],
                "clientConfig": {
                    "service": {
                        "namespace": service_namespace,
                        "name": service_name,
                        "path": path,
                        "port": port,
                    },
                    "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
                },
                "rules": merged_rules(policies),
                "failurePolicy": "Ignore" if fail_open else "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}
                    ]
                },
            }
        ],
    }
