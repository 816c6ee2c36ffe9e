"""Self-protection: the ValidatingAdmissionPolicy + binding that keep policyengine's own objects from being
changed or deleted by anyone but the identities named, so whoever may edit workloads cannot quietly switch
governance off by editing the webhook's Deployment, Service, certificate or policies.

Kubernetes never calls API-based admission (webhooks and ValidatingAdmissionPolicies alike) for
ValidatingWebhookConfigurations, ValidatingAdmissionPolicies and their bindings, to avoid circular
dependencies; only manifest-based policies (KEP-5793, ``--admission-control-config-file`` with
``staticManifestsDir``, names ending ``.static.k8s.io``) are. So the webhook configuration and admission
policies are protected only by the ``static`` output; the API-based output leaves them to RBAC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

API_VERSION = "admissionregistration.k8s.io/v1"
POLICY_NAME = "policyengine-protect"
STATIC_SUFFIX = ".static.k8s.io"  # KEP-5793: every manifest-based object's name ends so
# Bounds on what the caller names: identities are inlined into a CEL expression the API server compiles.
MAX_IDENTITIES = 64
MAX_IDENTITY_LENGTH = 512
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a Kubernetes object name (RFC 1123)
_OPERATIONS = ["UPDATE", "DELETE"]
_LABELS = {"app.kubernetes.io/name": "policyengine"}
_FINISHING_DELETION = (
    "(request.operation == 'UPDATE' && has(oldObject.metadata.deletionTimestamp))"
    " || (request.operation == 'DELETE' && namespaceObject != null"
    " && has(namespaceObject.metadata.deletionTimestamp))"
)


@dataclass(frozen=True)
class ProtectedNames:
    """The names of policyengine's objects as deploy/ and ``webhook-config`` give them."""

    webhook_configurations: tuple[str, ...] = ("policyengine",)
    deployment: str = "policyengine"
    service: str = "policyengine"
    tls_secret: str = "policyengine-tls"
    # The policies, the GovernanceConfig and the API server's client CA (deploy/README.md).
    config_maps: tuple[str, ...] = ("policyengine-policies", "policyengine-config", "policyengine-client-ca")
    # ValidatingAdmissionPolicies and bindings of policyengine's own (e.g. the generated ones): like the
    # webhook configurations, the API server lets only a static policy guard them.
    admission_policies: tuple[str, ...] = ()


def protection_policies(
    *,
    namespace: str,
    names: ProtectedNames,
    allow_users: Sequence[str],
    allow_groups: Sequence[str],
    static: bool = False,
) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding denying UPDATE and DELETE of ``names`` (in
    ``namespace``; the Deployment's scale too), exec/attach/port-forward/ephemeral containers into the
    namespace's pods and DELETE of ``namespace`` itself, except by ``allow_users`` / ``allow_groups``.
    ``static``: for manifest-based admission control, which also guards the webhook configurations and
    ``names.admission_policies``. Raises ValueError naming the bad argument."""
    _check_name("namespace", namespace)
    _check_names(names)
    users = _identities("allow_users", allow_users)
    groups = _identities("allow_groups", allow_groups)
    if not users and not groups:
        raise ValueError(
            "allow_users/allow_groups: name at least one identity, or nobody could ever change them"
        )
    name = POLICY_NAME + (STATIC_SUFFIX if static else "")
    binding = {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "spec": {"policyName": name, "validationActions": ["Deny", "Audit"]},
    }
    return [_policy(name, _rules(namespace, names, static), namespace, users, groups), binding]


def _policy(
    name: str, rules: list[dict[str, Any]], namespace: str, users: list[str], groups: list[str]
) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy: ``rules`` name the objects, the identities may change them."""
    cluster_scoped = sorted({res for r in rules if r["scope"] == "Cluster" for res in r["resources"]})
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            # resourceNames are names in any namespace: only policyengine's namespace is meant.
            "matchConditions": [
                {
                    "name": "policyengine-namespace",
                    "expression": f"request.namespace == {_cel(namespace)}"
                    f" || request.resource.resource in {_cel_list(cluster_scoped)}",
                }
            ],
            "variables": [
                {
                    "name": "allowed",
                    "expression": f"request.userInfo.username in {_cel_list(users)}"
                    f" || request.userInfo.groups.exists(g, g in {_cel_list(groups)})",
                },
                # A deletion an allowed identity started is finished by controllers: the garbage
                # collector removes the finalizers of an object being deleted, the namespace controller
                # deletes what a terminating namespace holds. Refusing them would wedge the deletion.
                {"name": "finishingDeletion", "expression": _FINISHING_DELETION},
            ],
            "validations": [
                {
                    "expression": "variables.allowed || variables.finishingDeletion",
                    "messageExpression": "request.operation + ' of ' + request.resource.resource + ' '"
                    " + request.name + ' is refused: policyengine\\'s own objects are changed only by the"
                    " identities named at install (deploy/README.md, Break glass)'",
                    "reason": "Forbidden",
                }
            ],
        },
    }


def _rules(namespace: str, names: ProtectedNames, static: bool) -> list[dict[str, Any]]:
    """One resource rule per resource, naming its objects exactly (resourceNames); ``None`` for every
    object of the resource in the namespace."""
    admission = "admissionregistration.k8s.io"
    # (group, resources, names, operations, namespaced)
    wanted: list[tuple[str, list[str], tuple[str, ...] | None, list[str], bool]] = [
        # A subresource is matched only when named: kubectl scale writes deployments/scale.
        ("apps", ["deployments", "deployments/scale"], (names.deployment,), _OPERATIONS, True),
        ("", ["services"], (names.service,), _OPERATIONS, True),
        ("", ["secrets"], (names.tls_secret,), _OPERATIONS, True),
        ("", ["configmaps"], names.config_maps, _OPERATIONS, True),
        # Its pods carry generated names: every pod of the namespace is the webhook's. Only interactive
        # access is refused; their controllers delete and recreate them in every rollout.
        ("", ["pods/exec", "pods/attach", "pods/portforward"], None, ["CONNECT"], True),
        ("", ["pods/ephemeralcontainers"], None, ["UPDATE"], True),
        ("", ["namespaces"], (namespace,), ["DELETE"], False),  # deleting it deletes all the above
    ]
    if static:
        hooks = names.webhook_configurations
        wanted.append((admission, ["validatingwebhookconfigurations"], hooks, _OPERATIONS, False))
        for resource in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
            wanted.append((admission, [resource], names.admission_policies, _OPERATIONS, False))
    rules = []
    for group, resources, objects, operations, namespaced in wanted:
        rule: dict[str, Any] = {
            "apiGroups": [group],
            "apiVersions": ["*"],
            "operations": list(operations),
            "resources": list(resources),
            "scope": "Namespaced" if namespaced else "Cluster",
        }
        if objects is not None:
            if not objects:  # an empty resourceNames would match every object of the resource
                continue
            rule["resourceNames"] = sorted(set(objects))
        rules.append(rule)
    return rules


def _check_names(names: ProtectedNames) -> None:
    for field in ("deployment", "service", "tls_secret"):
        _check_name(f"names.{field}", getattr(names, field))
    for field in ("webhook_configurations", "config_maps", "admission_policies"):
        for i, value in enumerate(getattr(names, field)):
            _check_name(f"names.{field}[{i}]", value)


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{field}: {value!r} is not a Kubernetes object name (RFC 1123, at most 253)")


def _identities(field: str, values: Sequence[str]) -> list[str]:
    """The user or group names, checked: each is inlined into the policy's CEL expression."""
    if isinstance(values, str):  # a str is a Sequence of its characters
        raise ValueError(f"{field}: a list of names, not the string {values!r}")
    if len(values) > MAX_IDENTITIES:
        raise ValueError(f"{field}: at most {MAX_IDENTITIES} names, not {len(values)}")
    out: list[str] = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value or len(value) > MAX_IDENTITY_LENGTH:
            raise ValueError(f"{field}[{i}]: a name of 1 to {MAX_IDENTITY_LENGTH} characters, not {value!r}")
        if not value.isprintable():
            raise ValueError(f"{field}[{i}]: {value!r} holds a control character")
        if value not in out:
            out.append(value)
    return out


def _cel(value: str) -> str:
    """``value`` as a CEL string literal (printable text: only the quote and the backslash need escaping)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_cel(v) for v in values) + "]"
