"""Which policies apply to a request: resource rules, kinds, operations, selectors, namespaces, names.

Semantics follow Kubernetes matchResources (resource rules on plural resource names, namespaceSelector
evaluated on the namespace's labels, or on the object itself for Namespace objects; objectSelector on
the object or the old object), with Gatekeeper's namespace lists (``prefix*``/``*suffix`` wildcards).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.memo import kept
from policyengine.model import (
    GroupVersionKind,
    GroupVersionResource,
    KindRule,
    LabelSelector,
    Match,
    PolicyException,
    Request,
    ResourceRule,
)

DEFAULT_OPERATIONS = ("CREATE", "UPDATE")

# Kinds whose plural resource is not the naive lower-case plural, and the cluster-scoped built-ins.
_IRREGULAR = {
    "Endpoints": "endpoints",
    "NetworkPolicy": "networkpolicies",
    "PodSecurityPolicy": "podsecuritypolicies",
    "Ingress": "ingresses",
    "IngressClass": "ingressclasses",
    "StorageClass": "storageclasses",
    "PriorityClass": "priorityclasses",
    "RuntimeClass": "runtimeclasses",
    "ResourceClaim": "resourceclaims",
    "DeviceClass": "deviceclasses",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "MutatingAdmissionPolicy": "mutatingadmissionpolicies",
    "ClusterTrainingRuntime": "clustertrainingruntimes",
    "TrainingRuntime": "trainingruntimes",
    "LLMInferenceService": "llminferenceservices",
    "InferenceService": "inferenceservices",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "ResourceQuota": "resourcequotas",
    "LimitRange": "limitranges",
}
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ClusterTrainingRuntime",
        "ClusterQueue",
        "ResourceFlavor",
        "DeviceClass",
        "APIService",
        "CertificateSigningRequest",
        "PodSecurityPolicy",
        "PriorityLevelConfiguration",
        "FlowSchema",
        "VolumeAttachment",
        "CSIDriver",
        "CSINode",
        "ResourceSlice",
        "GatewayClass",
        "ClusterIssuer",
        "ClusterServingRuntime",
        "ClusterStorageContainer",
        "ClusterLocalModel",
        "Queue",  # Volcano (scheduling.volcano.sh) queues are cluster-scoped
        "Topology",  # Kueue
        "ClusterPolicy",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ConstraintTemplate",
    }
)


def plural(kind: str) -> str:
    """The resource name Kubernetes serves ``kind`` under (Deployment -> deployments)."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in tuple("aeiou"):
        return lower[:-1] + "ies"
    return lower + "s"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def gvk_of(obj: Mapping[str, Any]) -> GroupVersionKind:
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    known = _KINDS.get((api_version, kind))
    if known is not None:
        return known
    group, version = split_api_version(api_version)
    made = GroupVersionKind(group, version, kind)
    return kept(_KINDS, (api_version, kind), len(api_version) + len(kind), made)


def gvr_of(gvk: GroupVersionKind) -> GroupVersionResource:
    known = _RESOURCES.get(gvk)
    if known is not None:
        return known
    made = GroupVersionResource(gvk.group, gvk.version, plural(gvk.kind))
    return kept(_RESOURCES, gvk, len(gvk.group) + len(gvk.version) + len(gvk.kind), made)


# One object per kind and resource met: a set of manifests holds a few kinds, and each request's (a large
# check keeps every request) then costs nothing. Bounded like policyengine.memo's memos: only short names
# are kept, at most MEMO_SIZE of each (full, it starts over), so a stream of distinct kinds cannot grow it.
_KINDS: dict[tuple[str, str], GroupVersionKind] = {}
_RESOURCES: dict[GroupVersionKind, GroupVersionResource] = {}


def labels_of(obj: Any) -> Mapping[str, str]:
    if not isinstance(obj, Mapping):
        return {}
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def selector_matches(sel: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if sel is None:
        return True
    for key, value in sel.match_labels:
        if labels.get(key) != value:
            return False
    for req in sel.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def _any(values: tuple[str, ...], value: str) -> bool:
    return "*" in values or value in values


def wildcard_match(pattern: str, value: str) -> bool:
    """Gatekeeper namespace patterns: exact, ``prefix*`` or ``*suffix``."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def _resource_matches(resource: str, sub: str, wanted: tuple[str, ...]) -> bool:
    full = f"{resource}/{sub}" if sub else resource
    for w in wanted:
        if w == "*" and not sub:
            return True
        if w == "*/*" or w == full:
            return True
        if sub and w == f"*/{sub}":
            return True
        if w == f"{resource}/*" and sub:
            return True
    return False


def rule_matches(rule: ResourceRule, request: Request) -> bool:
    res = request.resource
    if not (_any(rule.operations, request.operation) and _any(rule.api_groups, res.group)):
        return False
    if not _any(rule.api_versions, res.version):
        return False
    if not _resource_matches(res.resource, request.sub_resource, rule.resources):
        return False
    if rule.resource_names and request.name not in rule.resource_names:
        return False
    if rule.scope == "Cluster" and request.namespace:
        return False
    return not (rule.scope == "Namespaced" and not request.namespace)


def kind_matches(rule: KindRule, gvk: GroupVersionKind) -> bool:
    return _any(rule.api_groups, gvk.group) and _any(rule.kinds, gvk.kind)


def matches(match: Match, request: Request, namespace_object: Any) -> bool:
    """Whether ``match`` selects ``request``; ``namespace_object`` is the request's Namespace or None."""
    if match.resource_rules or match.kinds:
        by_rule = any(rule_matches(r, request) for r in match.resource_rules)
        by_kind = False
        if match.kinds:
            operations = match.operations or DEFAULT_OPERATIONS
            by_kind = _any(operations, request.operation) and any(
                kind_matches(k, request.kind) for k in match.kinds
            )
        if not (by_rule or by_kind):
            return False
    elif match.operations and not _any(match.operations, request.operation):
        return False
    if any(rule_matches(r, request) for r in match.exclude_resource_rules):
        return False
    if match.scope == "Cluster" and request.namespace:
        return False
    if match.scope == "Namespaced" and not request.namespace:
        return False

    is_namespace = request.kind.kind == "Namespace" and request.kind.group == ""
    ns_name = request.name if is_namespace else request.namespace
    # As in Gatekeeper, namespace lists never disqualify a cluster-scoped object other than a Namespace.
    if match.namespaces and ns_name and not any(wildcard_match(p, ns_name) for p in match.namespaces):
        return False
    if (
        match.excluded_namespaces
        and ns_name
        and any(wildcard_match(p, ns_name) for p in match.excluded_namespaces)
    ):
        return False
    if match.names and not any(wildcard_match(p, request.name) for p in match.names):
        return False
    if match.namespace_selector is not None and (request.namespace or is_namespace):
        obj = request.object if request.object is not None else request.old_object
        ns_labels = labels_of(obj) if is_namespace else labels_of(namespace_object)
        if not selector_matches(match.namespace_selector, ns_labels):
            return False
    if match.object_selector is not None:
        new, old = labels_of(request.object), labels_of(request.old_object)
        candidates = [x for x, o in ((new, request.object), (old, request.old_object)) if o is not None]
        if not any(selector_matches(match.object_selector, c) for c in candidates or [{}]):
            return False
    return all(matches(m, request, namespace_object) for m in match.also)


def exception_matches(exc: PolicyException, request: Request) -> bool:
    """Whether a PolicyException's match (namespaces, names, kinds, label selector) covers the request."""
    m = exc.match
    if m.namespaces and not any(wildcard_match(p, request.namespace) for p in m.namespaces):
        return False
    if m.names and not any(wildcard_match(p, request.name) for p in m.names):
        return False
    if m.kinds and not any(
        ("*" in k.api_groups or request.kind.group in k.api_groups)
        and ("*" in k.kinds or request.kind.kind in k.kinds)
        for k in m.kinds
    ):
        return False
    obj = request.object if request.object is not None else request.old_object
    return selector_matches(m.selector, labels_of(obj))
