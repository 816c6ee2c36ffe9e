"""Loaded policies as in-apiserver ValidatingAdmissionPolicies, so they hold with no webhook on the path.

``generate`` writes, for each policy whose expressions need only what kube-apiserver gives a
ValidatingAdmissionPolicy at the target version (``celenv``), a ValidatingAdmissionPolicy and its
binding with the same match (``matching``), matchConditions, variables, validations, messages, audit
annotations, failurePolicy and validationActions. A policy's fixed parameters (a Gatekeeper constraint)
are written into its expressions as a literal (``literal``); a binding's paramRef is kept, with the param
objects loaded beside it. Every other policy is listed with the reason and stays on the webhook.
``static`` writes them for manifest-based admission control (KEP-5793): names ending ``.static.k8s.io``
and no paramKind, so params are inlined or the policy stays on the webhook.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

from policyengine.model import Action, Match, Policy, ResourceRule
from policyengine.policyset import PolicySet
from policyengine.vapgen import celenv
from policyengine.vapgen.celenv import VERSIONS, parse_minor
from policyengine.vapgen.literal import cel_literal
from policyengine.vapgen.matching import DEFAULT_OPERATIONS, Translated, Unmatchable, selector, translate

__all__ = [
    "VERSIONS",
    "Generated",
    "Generation",
    "Scope",
    "Skipped",
    "generate",
    "parse_minor",
    "webhook_remainder",
]

API_VERSION = "admissionregistration.k8s.io/v1"
STATIC_SUFFIX = ".static.k8s.io"
STATIC_SINCE = 36  # manifest-based admission control is alpha from 1.36
NAME_PREFIX = "policyengine-"
PARAMS_VARIABLE = "policyengineParams"  # the variable holding inlined params
SOURCE_ANNOTATION = "policyengine.io/source-policy"
MANAGED_BY = {"app.kubernetes.io/managed-by": "policyengine"}
_ACTIONS = {Action.DENY: "Deny", Action.WARN: "Warn", Action.AUDIT: "Audit"}
_INDEXED_PATH = re.compile(r"\[\d+\]")  # a numeric index, which a VAP fieldPath may not hold


@dataclass(frozen=True)
class Skipped:
    policy: str
    source: str  # file:line
    reason: str


@dataclass(frozen=True)
class Generated:
    policy: str  # the source policy's name
    name: str  # the ValidatingAdmissionPolicy's
    documents: tuple[dict[str, Any], ...]  # the policy, its binding, its param objects


@dataclass
class Generation:
    generated: list[Generated] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [doc for g in self.generated for doc in g.documents]

    @property
    def names(self) -> frozenset[str]:
        """The source policies generated (they may leave the webhook)."""
        return frozenset(g.policy for g in self.generated)


@dataclass(frozen=True)
class Scope:
    """Namespaces the generated bindings leave out, as the webhook configuration does."""

    excluded_namespaces: tuple[str, ...] = ()
    exempt_label: str = ""


def generate(
    policy_set: PolicySet, *, minor: int, static: bool = False, scope: Scope = Scope()
) -> Generation:
    """Every policy of ``policy_set`` as a ValidatingAdmissionPolicy for kube-apiserver 1.<minor>, or the
    reason it stays on the webhook."""
    if static and minor < STATIC_SINCE:
        raise ValueError(
            f"manifest-based admission control (static) needs Kubernetes 1.{STATIC_SINCE} or later"
        )
    out = Generation()
    excepted = {name for exc in policy_set.exceptions for name in exc.policies}
    used: set[str] = set()
    for policy in policy_set.policies:
        where = f"{policy.source.file}:{policy.source.line}"
        try:
            if policy.name in excepted:
                raise Unmatchable("PolicyExceptions name it, and the API server does not apply them")
            docs = _documents(policy, policy_set, minor=minor, static=static, scope=scope, used=used)
        except Unmatchable as why:
            out.skipped.append(Skipped(policy.name, where, str(why)))
            continue
        out.generated.append(Generated(policy.name, str(docs[0]["metadata"]["name"]), tuple(docs)))
    return out


def _name(policy: str, static: bool, used: set[str]) -> str:
    """A DNS subdomain naming the generated policy, unique in the output, traceable to ``policy``."""
    # Each dot-separated label: [a-z0-9-], alphanumeric at both ends, at most 63 characters.
    labels = [re.sub(r"[^a-z0-9-]+", "-", part).strip("-") for part in policy.lower().split(".")]
    labels = [label for label in labels if label] or ["policy"]
    first = f"{NAME_PREFIX}{labels[0]}"[:54].strip("-")  # room for the "-" and 8 hex digits below
    rest = [label[:63].strip("-") for label in labels[1:]]
    name = ".".join([first, *rest])[:200].strip("-.")
    if name in used or ".".join(labels) != policy:
        head, dot, tail = name.partition(".")
        name = f"{head}-{hashlib.sha256(policy.encode()).hexdigest()[:8]}{dot}{tail}"
    if static:
        name += STATIC_SUFFIX
    used.add(name)
    return name


def _blockers(policy: Policy) -> str | None:
    if not policy.admission:
        return "it does not run at admission"
    if policy.pod_templates:
        return "it runs once per pod template of a workload, which only the webhook unfolds"
    if policy.requires_config:
        return f"it applies only when GovernanceConfig sets {' or '.join(policy.requires_config)}"
    if Action.DENY in policy.actions and Action.WARN in policy.actions:
        return "it both denies and warns, which a binding's validationActions may not say together"
    return None


def _expressions(policy: Policy) -> list[tuple[str, str]]:
    """(where, source) of every expression the generated policy carries."""
    out = [(f"matchConditions[{c.name}]", c.expression.source) for c in policy.match_conditions]
    out += [(f"variables.{v.name}", v.expression.source) for v in policy.variables if v.expression]
    for i, v in enumerate(policy.validations):
        out.append((f"validations[{i}].expression", v.expression.source))
        if v.message_expression:
            out.append((f"validations[{i}].messageExpression", v.message_expression.source))
    out += [(f"auditAnnotations[{a.name}]", a.expression.source) for a in policy.audit_annotations]
    return out


def _check(policy: Policy, minor: int) -> bool:
    """Raise Unmatchable when the API server cannot run the policy; return whether it reads ``params``."""
    blocker = _blockers(policy)
    if blocker:
        raise Unmatchable(blocker)
    reads = False
    for where, source in _expressions(policy):
        why = celenv.unavailable(source, minor)
        if why:
            raise Unmatchable(f"{where} {why}")
        reads = reads or celenv.reads_params(source)
    return reads


def _params(policy: Policy, policy_set: PolicySet, *, reads: bool, static: bool) -> tuple[str, Any]:
    """How the generated policy gets its params: ("none"|"inline"|"ref", the value to inline)."""
    if policy.param_ref is not None:  # Kubernetes: a paramKind's params must be found, read or not
        if not static:
            return "ref", None
        found = _selected(policy, policy_set)
        if len(found) != 1:
            raise Unmatchable(
                f"its binding's paramRef selects {len(found)} param objects among those loaded, and a "
                "static policy has no paramKind: only one can be written into it"
            )
        return "inline", found[0]
    if not reads:
        return "none", None
    if policy.uses_config_params and policy.params is None:
        raise Unmatchable(
            "it reads params, the GovernanceConfig spec, which changes without the policy: the webhook reads "
            "the live one"
        )
    return "inline", policy.params


def _selected(policy: Policy, policy_set: PolicySet) -> list[Any]:
    ref = policy.param_ref
    assert ref is not None
    if ref.name is None:
        return []
    out = []
    for obj in policy_set.param_objects:
        meta = obj.get("metadata") or {}
        if (obj.get("apiVersion"), obj.get("kind"), meta.get("name")) != (
            ref.api_version,
            ref.kind,
            ref.name,
        ):
            continue
        if ref.namespace is not None and meta.get("namespace", "") != ref.namespace:
            continue
        out.append(obj)
    return out


def _inline(source: str) -> str:
    found = celenv.params_tokens(source)
    if found is None:
        raise Unmatchable("a comprehension in it binds a variable named params, so params cannot be inlined")
    text, spans = found
    for start, end in reversed(spans):
        text = f"{text[:start]}variables.{PARAMS_VARIABLE}{text[end:]}"
    return text


def _documents(
    policy: Policy, policy_set: PolicySet, *, minor: int, static: bool, scope: Scope, used: set[str]
) -> list[dict[str, Any]]:
    reads = _check(policy, minor)
    how, value = _params(policy, policy_set, reads=reads, static=static)
    if any(v.name == PARAMS_VARIABLE for v in policy.variables):
        raise Unmatchable(f"it declares a variable named {PARAMS_VARIABLE}, the name inlined params take")
    translated = translate(policy.match)

    def expr(source: str) -> str:
        return _inline(source) if how == "inline" and celenv.reads_params(source) else source

    name = _name(policy.name, static, used)
    spec = _spec(policy, translated, expr)
    if how == "inline":
        literal = _literal(value, "its params")
        spec["variables"] = [{"name": PARAMS_VARIABLE, "expression": literal}, *spec.get("variables", [])]
    params: list[dict[str, Any]] = []
    if how == "ref":
        ref = policy.param_ref
        assert ref is not None
        spec = {"paramKind": {"apiVersion": ref.api_version, "kind": ref.kind}, **spec}
        params = [dict(p) for p in _selected(policy, policy_set)]
    meta = {"name": name, "labels": dict(MANAGED_BY), "annotations": {SOURCE_ANNOTATION: policy.name}}
    vap = {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy", "metadata": meta, "spec": spec}
    return [vap, _binding(policy, name, translated, scope, how), *params]


def _spec(policy: Policy, translated: Translated, expr: Any) -> dict[str, Any]:
    conditions = [*translated.conditions]
    conditions += [{"name": c.name, "expression": expr(c.expression.source)} for c in policy.match_conditions]
    spec: dict[str, Any] = {
        "failurePolicy": policy.failure_policy.value,
        "matchConstraints": translated.constraints,
    }
    if conditions:
        spec["matchConditions"] = conditions
    variables = [
        {
            "name": v.name,
            "expression": expr(v.expression.source)
            if v.expression
            else _literal(v.value, f"variable {v.name}"),
        }
        for v in policy.variables
    ]
    if variables:
        spec["variables"] = variables
    spec["validations"] = [_validation(v, expr) for v in policy.validations]
    if policy.audit_annotations:
        spec["auditAnnotations"] = [
            {"key": a.name, "valueExpression": expr(a.expression.source)} for a in policy.audit_annotations
        ]
    return spec


def _literal(value: Any, what: str) -> str:
    try:
        return cel_literal(value)
    except ValueError as err:
        raise Unmatchable(f"{what} cannot be written as a CEL literal: {err}") from None


def _validation(v: Any, expr: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"expression": expr(v.expression.source)}
    if v.message:
        out["message"] = " ".join(str(v.message).split())  # the API server refuses line breaks here
    if v.message_expression:
        out["messageExpression"] = expr(v.message_expression.source)
    if v.reason:
        out["reason"] = v.reason
    if v.field_path and not _INDEXED_PATH.search(v.field_path):
        out["fieldPath"] = v.field_path
    return out


def _binding(policy: Policy, name: str, translated: Translated, scope: Scope, how: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policyName": name,
        "validationActions": sorted(_ACTIONS[a] for a in policy.actions),
    }
    resources = dict(translated.binding or {})
    exclusions = [
        *([{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(scope.excluded_namespaces)}]
          if scope.excluded_namespaces else []),
        *([{"key": scope.exempt_label, "operator": "NotIn", "values": ["true"]}] if scope.exempt_label else []),
    ]  # fmt: skip
    if exclusions:
        ns = resources.get("namespaceSelector") or {}
        resources["namespaceSelector"] = {
            **ns,
            "matchExpressions": [*ns.get("matchExpressions", []), *exclusions],
        }
    if resources:
        spec["matchResources"] = resources
    if how == "ref" and policy.param_ref is not None:
        ref = policy.param_ref
        param_ref: dict[str, Any] = {"parameterNotFoundAction": ref.not_found_action}
        if ref.name:
            param_ref["name"] = ref.name
        if ref.namespace:
            param_ref["namespace"] = ref.namespace
        if ref.selector is not None:
            param_ref["selector"] = selector(ref.selector)
        spec["paramRef"] = param_ref
    meta = {"name": name, "labels": dict(MANAGED_BY), "annotations": {SOURCE_ANNOTATION: policy.name}}
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": meta,
        "spec": spec,
    }


def webhook_remainder(policy: Policy) -> Policy | None:
    """What of a generated policy the webhook must still be sent: the ``scale`` UPDATEs of the workloads
    its kinds cover. ``kubectl scale`` changes replicas there, and only the webhook judges such a request
    (as the UPDATE of the workload it scales, ``policyengine.scale``); a ValidatingAdmissionPolicy sees a
    bare Scale. None when nothing remains."""
    from policyengine.scale import REPLICAS_AT, SUBRESOURCE

    ops = policy.match.operations or DEFAULT_OPERATIONS
    if not policy.match.kinds or not ("*" in ops or "UPDATE" in ops):
        return None
    rules = tuple(
        ResourceRule(api_groups=(group,), resources=(f"{resource}/{SUBRESOURCE}",), operations=("UPDATE",))
        for (group, resource), (kind, _) in sorted(REPLICAS_AT.items())
        if any(
            ("*" in k.api_groups or group in k.api_groups) and ("*" in k.kinds or kind in k.kinds)
            for k in policy.match.kinds
        )
    )
    return dc_replace(policy, match=Match(resource_rules=rules)) if rules else None
