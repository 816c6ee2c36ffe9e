"""The ValidatingWebhookConfiguration that sends kube-apiserver's requests to ``policyengine serve``.

Rules are derived from what the loaded policies match, so the API server only calls the webhook for
requests some policy may decide: resource rules as written (with their operations), ``match.kinds``
turned into plural resources (``match.plural``) with the policy's operations (default CREATE, UPDATE).
A ``*`` (every kind, or a policy without match rules) stands for the workload kinds the packs can judge
(``webhook.scope``), never for every resource. A policy whose kinds cover a workload with a ``scale``
subresource (Deployment, StatefulSet, ReplicaSet, ReplicationController, LeaderWorkerSet) on UPDATE
also asks for ``<plural>/scale`` UPDATEs: ``kubectl scale`` and autoscalers change replicas there, and
the webhook judges them as the workload's UPDATE.

Each rule gets a failurePolicy: the policy's ``policyengine.io/failure-policy`` annotation, else the
default (``ByKind``: Fail for the governed AI workload kinds, Ignore for the rest; or Fail / Ignore for
all). A rule that overlaps a Fail rule fails closed too, so one request never reaches two entries. System
namespaces, the webhook's own namespace and namespaces labelled ``EXEMPT_LABEL=true`` are excluded, so
the webhook can never block its own recovery (deploy/README.md, "Break glass").
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policyengine.match import DEFAULT_OPERATIONS, plural
from policyengine.model import Match, Policy
from policyengine.scale import REPLICAS_AT, SUBRESOURCE
from webhook.conditions import SPLIT, match_conditions
from webhook.scope import WORKLOAD_RESOURCES, Resource, expand, is_governed

WEBHOOK_NAME = "validate.policyengine.io"
OPEN_WEBHOOK_NAME = "validate-open.policyengine.io"  # the Ignore entry, when there is a Fail one too
CONFIGURATION_NAME = "policyengine"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
EXEMPT_LABEL = "policyengine.io/exempt"  # a namespace labelled EXEMPT_LABEL=true is never sent
TIMEOUT_SECONDS = 5
MIN_TIMEOUT, MAX_TIMEOUT = 1, 10  # the API server's own bounds for timeoutSeconds are 1..30
FAIL, IGNORE, BY_KIND = "Fail", "Ignore", "ByKind"
BY_POD_SPEC = "ByPodSpec"  # a built-in pod kind under ByKind: in both entries, split by matchConditions
DEFAULT_MODES = (BY_KIND, FAIL, IGNORE)

Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], str]


def _ops(operations: Iterable[str]) -> tuple[str, ...]:
    ops = tuple(operations)
    return ("*",) if "*" in ops else tuple(sorted(set(ops)))


def rules_for(match: Match, kinds: Sequence[Resource] = WORKLOAD_RESOURCES) -> set[Rule]:
    """(operations, apiGroups, apiVersions, resources, scope) tuples covering ``match``; a ``*`` resource
    or kind stands for ``kinds``."""
    rules: set[Rule] = set()
    for r in match.resource_rules:
        for pattern in r.resources:
            for group, resource in _pairs(r.api_groups, pattern, kinds):
                rules.add((_ops(r.operations), group, tuple(r.api_versions), (resource,), r.scope))
    for k in match.kinds:
        ops = _ops(match.operations or DEFAULT_OPERATIONS)
        if "*" in k.kinds:
            rules |= _everything(ops, k.api_groups, kinds)
            continue
        resources = tuple(sorted({plural(kind) for kind in k.kinds}))
        rules.add((ops, tuple(k.api_groups), ("*",), resources, "*"))
        if "*" in ops or "UPDATE" in ops:
            rules |= _scale_rules(k.api_groups, k.kinds)
    if not match.resource_rules and not match.kinds:
        rules |= _everything(_ops(match.operations or ("*",)), ("*",), kinds)
    return rules


def _pairs(
    groups: Sequence[str], pattern: str, kinds: Sequence[Resource]
) -> list[tuple[tuple[str, ...], str]]:
    """(apiGroups, resource) of one resource pattern: a wildcard becomes each of ``kinds``, one group each."""
    if not pattern.startswith("*"):
        return [(tuple(groups), pattern)]
    return [((group,), resource) for group, resource in expand(groups, pattern, kinds)]


def _everything(ops: tuple[str, ...], groups: Sequence[str], kinds: Sequence[Resource]) -> set[Rule]:
    """A ``*`` kind in ``groups``: each of ``kinds`` there, and the scale subresource of those that have one."""
    rules: set[Rule] = set()
    for group, resource in expand(groups, "*", kinds):
        rules.add((ops, (group,), ("*",), (resource,), "*"))
        if ("*" in ops or "UPDATE" in ops) and (group, resource) in REPLICAS_AT:
            rules.add((("UPDATE",), (group,), ("*",), (f"{resource}/{SUBRESOURCE}",), "*"))
    return rules


def _scale_rules(groups: Iterable[str], kinds: Iterable[str]) -> set[Rule]:
    """UPDATE rules for the scale subresource of the workload kinds covered by ``groups`` x ``kinds``."""
    groups, kinds = set(groups), set(kinds)
    rules: set[Rule] = set()
    for (group, resource), (kind, _) in REPLICAS_AT.items():
        if ("*" in groups or group in groups) and ("*" in kinds or kind in kinds):
            rules.add((("UPDATE",), (group,), ("*",), (f"{resource}/{SUBRESOURCE}",), "*"))
    return rules


def merged_rules(
    policies: Iterable[Policy], kinds: Sequence[Resource] = WORKLOAD_RESOURCES
) -> list[dict[str, Any]]:
    """Distinct rules of ``policies``; rules that differ only in resources are merged into one."""
    return merge(rule for policy in policies for rule in rules_for(policy.match, kinds))


def merge(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """Rules that differ only in resources merged into one; a rule a broader one covers dropped."""
    grouped: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str], set[str]] = {}
    for ops, groups, versions, resources, scope in rules:
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


def failure_policies(
    policies: Iterable[Policy], *, kinds: Sequence[Resource] = WORKLOAD_RESOURCES, default: str = BY_KIND
) -> dict[str, set[Rule]]:
    """The rules of ``policies`` by failurePolicy ("Fail", "Ignore", or ``BY_POD_SPEC`` for a built-in pod
    kind under ByKind), one resource per rule. A policy's annotation chooses for its rules, else
    ``default``; a rule overlapping a Fail rule fails closed."""
    if default not in DEFAULT_MODES:
        raise ValueError(f"the default failure policy is one of {', '.join(DEFAULT_MODES)}, not {default!r}")
    by: dict[str, set[Rule]] = {FAIL: set(), IGNORE: set(), BY_POD_SPEC: set()}
    for policy in policies:
        for ops, groups, versions, resources, scope in rules_for(policy.match, kinds):
            for resource in resources:
                rule = (ops, groups, versions, (resource,), scope)
                by[_asked(policy.webhook_failure_policy or default, groups, resource)].add(rule)
    moved = True
    while moved:  # a few dozen rules: the fixpoint is reached in a pass or two
        moved = False
        for source in (IGNORE, BY_POD_SPEC):
            closed = {r for r in by[source] if any(_overlap(r, f) for f in by[FAIL])}
            by[source] -= closed
            by[FAIL] |= closed
            moved = moved or bool(closed)
    return by


def _asked(mode: str, groups: Sequence[str], resource: str) -> str:
    if mode == BY_KIND:
        if is_governed(groups, resource):
            return FAIL
        split = "*" not in groups and all((g, resource) in SPLIT for g in groups)
        return BY_POD_SPEC if split else IGNORE
    return mode


def _overlap(a: Rule, b: Rule) -> bool:
    """Whether one request can match both rules (each rule holds one resource)."""

    def meet(x: tuple[str, ...], y: tuple[str, ...]) -> bool:
        return "*" in x or "*" in y or bool(set(x) & set(y))

    (ra,), (rb,) = a[3], b[3]
    same = ra == rb or any(
        r.endswith("/*") and o.partition("/")[0] == r[:-2] and "/" in o for r, o in ((ra, rb), (rb, ra))
    )
    scopes = a[4] == b[4] or "*" in (a[4], b[4])
    return same and scopes and meet(a[0], b[0]) and meet(a[1], b[1]) and meet(a[2], b[2])


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


def _split(
    by: dict[str, set[Rule]], fail_open: bool, config: Mapping[str, Any] | None
) -> tuple[dict[str, set[Rule]], dict[str, list[dict[str, str]]]]:
    """The rules of each entry, and the matchConditions of each: the built-in pod kinds under ByKind go
    to both entries, and the conditions pick one."""
    split = by.pop(BY_POD_SPEC)
    if fail_open:
        by = {FAIL: set(), IGNORE: by[FAIL] | by[IGNORE]}
    if not split:
        return by, {}
    conditions: dict[str, list[dict[str, str]]] = {}
    conditions[FAIL], conditions[IGNORE] = match_conditions(merge(split), config)
    return {FAIL: by[FAIL] | split, IGNORE: by[IGNORE] | split}, conditions


def webhook_configuration(
    policies: Iterable[Policy],
    *,
    service_namespace: str,
    service_name: str,
    ca_bundle: bytes,
    fail_open: bool = False,
    failure_policy: str = BY_KIND,
    kinds: Sequence[Resource] = WORKLOAD_RESOURCES,
    timeout_seconds: int = TIMEOUT_SECONDS,
    config: Mapping[str, Any] | None = None,
    path: str = "/validate",
    port: int = 443,
) -> dict[str, Any]:
    """The configuration: one entry per failurePolicy the rules ask for (the Fail one first, named
    ``WEBHOOK_NAME``); ``fail_open`` makes every entry Ignore. Under ByKind the built-in pod kinds are
    in both, split by ``matchConditions`` (``webhook.conditions``; ``config``'s accelerators count too)."""
    if not MIN_TIMEOUT <= timeout_seconds <= MAX_TIMEOUT:
        raise ValueError(f"timeoutSeconds is {MIN_TIMEOUT}..{MAX_TIMEOUT}, not {timeout_seconds}")
    by = failure_policies(policies, kinds=kinds, default=IGNORE if fail_open else failure_policy)
    by, conditions = _split(by, fail_open, config)
    wanted = [(policy, rules) for policy, rules in by.items() if rules]
    if not wanted:  # no policy asks for anything: one entry that matches nothing
        wanted = [(IGNORE if fail_open or failure_policy == IGNORE else FAIL, set())]
    client = {
        "service": {"namespace": service_namespace, "name": service_name, "path": path, "port": port},
        "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
    }
    excluded = sorted({*SYSTEM_NAMESPACES, service_namespace})
    selector = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded},
            {"key": EXEMPT_LABEL, "operator": "NotIn", "values": ["true"]},
        ]
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app.kubernetes.io/name": "policyengine"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME if i == 0 else OPEN_WEBHOOK_NAME,
                "admissionReviewVersions": ["v1", "v1beta1"],
                "clientConfig": copy.deepcopy(client),  # no shared nodes: YAML would print anchors
                "rules": merge(rules),
                "failurePolicy": policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": timeout_seconds,
                "namespaceSelector": copy.deepcopy(selector),
                **({"matchConditions": conditions[policy]} if policy in conditions else {}),
            }
            for i, (policy, rules) in enumerate(wanted)
        ],
    }
