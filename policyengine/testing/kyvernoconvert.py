"""Kyverno ``ClusterPolicy``/``Policy`` rules with ``validate.cel`` turned into ValidatingAdmissionPolicies,
so a Kyverno test file can run them; anything with no ValidatingAdmissionPolicy meaning is refused with
the reason.

Each rule becomes one policy and one binding (Kyverno gives one result per rule, whatever the number of
expressions). What maps: ``match`` kinds and operations (``resourceRules``), names (``resourceNames``),
namespaces (a ``kubernetes.io/metadata.name`` namespace selector), ``selector`` and ``namespaceSelector``;
``exclude`` kinds, names and namespaces; ``celPreconditions`` (matchConditions: false is a skip, as in
Kyverno); ``validate.cel`` expressions, variables, messages, ``paramKind``/``paramRef``, auditAnnotations;
``validationFailureAction`` Enforce/Audit. Autogen is done as Kyverno's ``autogen`` v1 does it: a rule
matching only Pods also runs on the pod controllers, its text rewritten from ``object.spec`` to
``object.spec.template.spec`` (``…jobTemplate.spec.template.spec`` for CronJobs), as rules
``autogen-<rule>`` and ``autogen-cronjob-<rule>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.match import plural

KYVERNO_POLICY_KINDS = frozenset(
    (version, kind)
    for version in ("kyverno.io/v1", "kyverno.io/v2beta1")
    for kind in ("ClusterPolicy", "Policy")
)
AUTOGEN_ANNOTATION = "pod-policies.kyverno.io/autogen-controllers"
POD_CONTROLLERS = ("DaemonSet", "Deployment", "Job", "StatefulSet", "ReplicaSet", "ReplicationController")
_CONTROLLER_GROUPS = {"Job": "batch", "CronJob": "batch", "ReplicationController": ""}
_POD_REWRITE = (
    ("object.spec", "object.spec.template.spec"),
    ("oldObject.spec", "oldObject.spec.template.spec"),
    ("object.metadata", "object.spec.template.metadata"),
    ("oldObject.metadata", "oldObject.spec.template.metadata"),
)
_CRONJOB_REWRITE = (
    ("object.spec", "object.spec.jobTemplate.spec.template.spec"),
    ("oldObject.spec", "oldObject.spec.jobTemplate.spec.template.spec"),
    ("object.metadata", "object.spec.jobTemplate.spec.template.metadata"),
    ("oldObject.metadata", "oldObject.spec.jobTemplate.spec.template.metadata"),
)
_FILTER_KEYS = frozenset(
    {"kinds", "operations", "names", "name", "namespaces", "selector", "namespaceSelector"}
)
_CEL_KEYS = frozenset({"expressions", "variables", "paramKind", "paramRef", "auditAnnotations"})
_RULE_KEYS = frozenset({"name", "match", "exclude", "validate", "celPreconditions", "skipBackgroundRequests"})


class Refused(Exception):
    """A rule or policy with no ValidatingAdmissionPolicy meaning; the message says why."""


@dataclass(frozen=True)
class ConvertedRule:
    policy: str  # the Kyverno policy's name
    rule: str  # the Kyverno rule name, autogen prefix included
    vap_name: str  # the name of the generated ValidatingAdmissionPolicy
    documents: tuple[dict[str, Any], dict[str, Any]]  # policy, binding


def convert(policy: Mapping[str, Any]) -> list[ConvertedRule]:
    """The rules of a Kyverno policy as ValidatingAdmissionPolicies. Raises Refused."""
    meta = policy.get("metadata") or {}
    name = str(meta.get("name", ""))
    spec = policy.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("rules"), list):
        raise Refused("the policy has no spec.rules")
    action = _action(spec)
    controllers = _autogen_controllers(meta.get("annotations") or {}, spec["rules"])
    out: list[ConvertedRule] = []
    for rule in spec["rules"]:
        if not isinstance(rule, Mapping):
            raise Refused("a rule is not a mapping")
        variants: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
            (str(rule.get("name", "")), "Pod", ())
        ]
        if controllers:
            variants += [(f"autogen-{rule.get('name')}", "controllers", _POD_REWRITE)]
            if "CronJob" in controllers:
                variants.append((f"autogen-cronjob-{rule.get('name')}", "CronJob", _CRONJOB_REWRITE))
        for rule_name, target, rewrite in variants:
            data = _rewrite(rule, rewrite)
            kinds = (
                None
                if target == "Pod"
                else [k for k in controllers if (k == "CronJob") == (target == "CronJob")]
            )
            vap_name = f"kyverno-{len(out)}-{name}"[:253]
            out.append(ConvertedRule(name, rule_name, vap_name, _documents(vap_name, data, action, kinds)))
    return out


def _action(spec: Mapping[str, Any]) -> str:
    raw = str(spec.get("validationFailureAction") or "Audit").lower()
    if raw not in ("audit", "enforce"):
        raise Refused(f"validationFailureAction {raw!r} is neither Audit nor Enforce")
    return "Deny" if raw == "enforce" else "Audit"


def _autogen_controllers(annotations: Mapping[str, Any], rules: list[Any]) -> list[str]:
    """The controllers autogen covers, as Kyverno's CanAutoGen decides (empty: no autogen)."""
    wanted = str(annotations.get(AUTOGEN_ANNOTATION, "all"))
    if wanted == "none":
        return []
    needed = False
    for rule in rules:
        if not isinstance(rule, Mapping):
            return []
        for block in (rule.get("match") or {}, rule.get("exclude") or {}):
            for f in _filters(block):
                if f.get("name") or f.get("names") or f.get("selector") is not None or f.get("annotations"):
                    return []
                kinds = [str(k).rpartition("/")[2] for k in f.get("kinds") or ()]
                if any(k != "Pod" for k in kinds):
                    return []
                needed = needed or "Pod" in kinds
    if not needed:
        return []
    if wanted == "all":
        return [*POD_CONTROLLERS, "CronJob"]
    return [k.strip() for k in wanted.split(",") if k.strip()]


def _filters(block: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [f.get("resources") or {} for f in [*(block.get("any") or ()), *(block.get("all") or ())]]
    if block.get("resources"):
        found.append(block["resources"])
    return [f for f in found if isinstance(f, Mapping)]


def _rewrite(value: Any, rewrite: tuple[tuple[str, str], ...]) -> Any:
    """Kyverno's textual autogen: every string of the rule gets the replacements, in order."""
    if isinstance(value, str):
        for old, new in rewrite:
            value = value.replace(old, new)
        return value
    if isinstance(value, Mapping):
        return {k: _rewrite(v, rewrite) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, rewrite) for v in value]
    return value


def _documents(
    name: str, rule: Mapping[str, Any], action: str, kinds: list[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    validate = rule.get("validate") or {}
    cel = validate.get("cel") if isinstance(validate, Mapping) else None
    if not isinstance(cel, Mapping):
        kind = next((k for k in ("mutate", "generate", "verifyImages") if k in rule), None)
        what = (
            f"a {kind} rule (only validation runs here)"
            if kind
            else "a validate rule without CEL (pattern, deny, foreach)"
        )
        raise Refused(f"rule {rule.get('name')!r} is {what}")
    extra = sorted(set(rule) - _RULE_KEYS)
    if extra:
        raise Refused(f"rule {rule.get('name')!r} uses {', '.join(extra)} (JMESPath, no CEL meaning)")
    if set(validate) - {"cel", "message", "failureAction", "allowExistingViolations"}:
        raise Refused(f"rule {rule.get('name')!r}: validate mixes cel with other validation kinds")
    if set(cel) - _CEL_KEYS:
        raise Refused(
            f"rule {rule.get('name')!r}: validate.cel.{sorted(set(cel) - _CEL_KEYS)[0]} is not supported"
        )
    constraints = _match(rule.get("match") or {}, kinds)
    _exclude(rule.get("exclude") or {}, constraints)
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": constraints,
        "validations": [_validation(e, validate) for e in cel.get("expressions") or ()],
    }
    for key in ("variables", "paramKind", "auditAnnotations"):
        if cel.get(key):
            spec[key] = cel[key]
    if rule.get("celPreconditions"):
        spec["matchConditions"] = rule["celPreconditions"]
    failure = str(validate.get("failureAction") or "").lower()
    actions = ["Deny"] if failure == "enforce" else ["Audit"] if failure == "audit" else [action]
    binding_spec: dict[str, Any] = {"policyName": name, "validationActions": actions}
    if cel.get("paramRef"):
        binding_spec["paramRef"] = cel["paramRef"]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": binding_spec,
    }
    return policy, binding


def _validation(expr: Any, validate: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(expr, Mapping) or "expression" not in expr:
        raise Refused("a validate.cel expression has no expression field")
    out = {k: expr[k] for k in ("expression", "message", "messageExpression", "reason") if k in expr}
    if "message" not in out and validate.get("message"):
        out["message"] = validate["message"]
    return out


def _match(block: Mapping[str, Any], kinds_override: list[str] | None) -> dict[str, Any]:
    """match -> matchConstraints. One filter may carry names, namespaces and selectors; several filters
    (``any``) may only differ in kinds and operations, which a list of resourceRules expresses."""
    if set(block) - {"any", "all", "resources"}:
        raise Refused(f"match.{sorted(set(block) - {'any', 'all', 'resources'})[0]} is not supported")
    entries = [*(block.get("any") or ()), *(block.get("all") or ())]
    if block.get("resources"):
        entries.append({"resources": block["resources"]})
    if not entries:
        raise Refused("the rule matches nothing")
    if len(block.get("all") or ()) > 1:
        raise Refused("match.all with several filters")
    filters = [_filter(e, "match") for e in entries]
    if len(filters) > 1 and any(set(f) - {"kinds", "operations"} for f in filters):
        raise Refused("match.any with several filters that select by name, namespace or labels")
    constraints: dict[str, Any] = {"resourceRules": []}
    for f in filters:
        kinds = kinds_override if kinds_override is not None else list(f.get("kinds") or ())
        operations = [str(o) for o in f.get("operations") or ("*",)]
        names = _names(f)
        for kind in kinds:
            rule = _resource_rule(str(kind), operations)
            if names:
                rule["resourceNames"] = names
            constraints["resourceRules"].append(rule)
        if f.get("namespaces"):
            constraints["namespaceSelector"] = _namespace_names(f["namespaces"], "In")
        for key, target in (("selector", "objectSelector"), ("namespaceSelector", "namespaceSelector")):
            if f.get(key) is not None:
                if target in constraints:
                    raise Refused("match gives both namespaces and a namespaceSelector")
                constraints[target] = f[key]
    return constraints


def _exclude(block: Mapping[str, Any], constraints: dict[str, Any]) -> None:
    """exclude -> excludeResourceRules (kinds, names) or a NotIn namespace selector."""
    if not block:
        return
    entries = [*(block.get("any") or ()), *(block.get("all") or ())]
    if block.get("resources"):
        entries.append({"resources": block["resources"]})
    if set(block) - {"any", "all", "resources"} or len(entries) != 1:
        raise Refused("exclude other than one filter of kinds, names or namespaces")
    f = _filter(entries[0], "exclude")
    if set(f) - {"kinds", "names", "name", "namespaces"}:
        raise Refused("exclude by labels or operations")
    if f.get("namespaces"):
        if "namespaceSelector" in constraints:
            raise Refused("exclude.namespaces together with a match namespace selector")
        constraints["namespaceSelector"] = _namespace_names(f["namespaces"], "NotIn")
    kinds = f.get("kinds") or [r["resources"][0] for r in constraints["resourceRules"]]
    names = _names(f)
    if f.get("kinds") or names:
        rules = []
        for kind in kinds:
            rule = _resource_rule(str(kind), ["*"]) if f.get("kinds") else {**_copy_rule(constraints, kind)}
            if names:
                rule["resourceNames"] = names
            rules.append(rule)
        constraints["excludeResourceRules"] = rules


def _copy_rule(constraints: Mapping[str, Any], resource: str) -> dict[str, Any]:
    for r in constraints["resourceRules"]:
        if r["resources"][0] == resource:
            return {k: v for k, v in r.items() if k != "resourceNames"}
    raise Refused("exclude names for a kind the rule does not match")


def _filter(entry: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping) or set(entry) - {"resources"}:
        raise Refused(f"{where} by subjects, roles or clusterRoles (no ValidatingAdmissionPolicy field)")
    f = entry.get("resources") or {}
    if not isinstance(f, Mapping):
        raise Refused(f"{where}.resources is not a mapping")
    if set(f) - _FILTER_KEYS:
        raise Refused(f"{where}.resources.{sorted(set(f) - _FILTER_KEYS)[0]} is not supported")
    return f


def _names(f: Mapping[str, Any]) -> list[str]:
    names = [str(n) for n in [*(f.get("names") or ()), *([f["name"]] if f.get("name") else [])]]
    if any(_is_wildcard(n) for n in names):
        raise Refused("a wildcard resource name (ValidatingAdmissionPolicy resourceNames are exact)")
    return names


def _namespace_names(namespaces: Any, operator: str) -> dict[str, Any]:
    values = [str(n) for n in namespaces]
    if any(_is_wildcard(n) for n in values):
        raise Refused("a wildcard namespace name (a namespace selector matches exact names)")
    return {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": operator, "values": values}]
    }


def _is_wildcard(name: str) -> bool:
    return bool(re.search(r"[*?]", name))


def _resource_rule(kind: str, operations: list[str]) -> dict[str, Any]:
    """A Kyverno kind (``Pod``, ``apps/v1/Deployment``, ``v1/Pod``, ``*``) as a VAP resource rule."""
    parts = kind.split("/")
    if "." in parts[-1] or (len(parts) > 1 and parts[-1][:1].islower()):
        raise Refused(f"kind {kind!r} names a subresource")
    base = parts[-1]
    group = (
        parts[0]
        if len(parts) == 3
        else _CONTROLLER_GROUPS.get(base, "*")
        if base in _CONTROLLER_GROUPS
        else "*"
    )
    if base in POD_CONTROLLERS and base not in _CONTROLLER_GROUPS:
        group = "apps"
    resource = "*" if base == "*" else plural(base)
    return {"apiGroups": [group], "apiVersions": ["*"], "operations": operations, "resources": [resource]}
