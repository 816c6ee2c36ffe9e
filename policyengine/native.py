"""Native ``policyengine.io/v1`` documents (Policy, PolicyException, GovernanceConfig) -> model values.

Documents reaching these functions have passed their JSON Schema; what is checked here is what a schema
cannot say (Deny and Warn together, a bad expiry date). Shared pieces (selectors, resource rules, named
expressions) are public so the compat layer builds the same values from Kubernetes and Gatekeeper kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from policyengine import errors, requirements
from policyengine.cel import Declarations
from policyengine.errors import Problem
from policyengine.loader import Document, PathKey, render_path
from policyengine.model import (
    Action,
    ExceptionMatch,
    Expr,
    FailurePolicy,
    KindRule,
    LabelSelector,
    Match,
    NamedExpr,
    Policy,
    PolicyException,
    ResourceRule,
    SelectorRequirement,
    SourceRef,
    Validation,
    Variable,
)

ANNOTATION = "policyengine.io/"
# The names every policy's expressions are evaluated with (the engine binds them), as in Kubernetes.
ADMISSION_ROOTS = frozenset({"object", "oldObject", "request", "params", "namespaceObject", "variables"})
# The views native policies also read, computed once per request (views.py).
VIEWS = frozenset({"workload", "inventory", "org"})
DECLARED = Declarations("Policy", ADMISSION_ROOTS | VIEWS)
# An exception's matchConditions run with the bindings of the policy they except, views included.
EXCEPTION_DECLARED = Declarations("PolicyException", ADMISSION_ROOTS | VIEWS)
_ACTIONS = {"Deny": Action.DENY, "Warn": Action.WARN, "Audit": Action.AUDIT}


def expr(doc: Document, path: PathKey, source: str) -> Expr:
    return Expr(source, render_path(path), SourceRef(doc.file, doc.line_of(path), doc.column_of(path)))


def selector(raw: Mapping[str, Any] | None) -> LabelSelector | None:
    if raw is None:
        return None
    labels = tuple(sorted((str(k), str(v)) for k, v in (raw.get("matchLabels") or {}).items()))
    reqs = tuple(
        SelectorRequirement(str(r["key"]), str(r["operator"]), tuple(str(v) for v in r.get("values") or ()))
        for r in raw.get("matchExpressions") or ()
    )
    return LabelSelector(labels, reqs)


def resource_rule(raw: Mapping[str, Any]) -> ResourceRule:
    return ResourceRule(
        api_groups=tuple(raw.get("apiGroups") or ("*",)),
        api_versions=tuple(raw.get("apiVersions") or ("*",)),
        resources=tuple(raw.get("resources") or ("*",)),
        operations=tuple(raw.get("operations") or ("*",)),
        resource_names=tuple(raw.get("resourceNames") or ()),
        scope=str(raw.get("scope") or "*"),
    )


def kind_rules(raw: Sequence[Mapping[str, Any]] | None) -> tuple[KindRule, ...]:
    return tuple(
        KindRule(tuple(k.get("apiGroups") or ("*",)), tuple(k.get("kinds") or ("*",))) for k in raw or ()
    )


def named_exprs(
    doc: Document, base: PathKey, raw: Sequence[Mapping[str, Any]] | None
) -> tuple[NamedExpr, ...]:
    return tuple(
        NamedExpr(str(item["name"]), expr(doc, (*base, i, "expression"), str(item["expression"])))
        for i, item in enumerate(raw or ())
    )


def match_resources(raw: Mapping[str, Any] | None) -> Match:
    raw = raw or {}
    return Match(
        resource_rules=tuple(resource_rule(r) for r in raw.get("resourceRules") or ()),
        exclude_resource_rules=tuple(resource_rule(r) for r in raw.get("excludeResourceRules") or ()),
        namespace_selector=selector(raw.get("namespaceSelector")),
        object_selector=selector(raw.get("objectSelector")),
    )


def validations(doc: Document, base: PathKey, raw: Sequence[Mapping[str, Any]]) -> tuple[Validation, ...]:
    out = []
    for i, v in enumerate(raw):
        message_expression = v.get("messageExpression")
        out.append(
            Validation(
                expression=expr(doc, (*base, i, "expression"), str(v["expression"])),
                message=v.get("message"),
                message_expression=(
                    expr(doc, (*base, i, "messageExpression"), str(message_expression))
                    if message_expression
                    else None
                ),
                reason=v.get("reason"),
                field_path=v.get("fieldPath") or None,
                field_path_expression=(
                    expr(doc, (*base, i, "fieldPathExpression"), str(v["fieldPathExpression"]))
                    if v.get("fieldPathExpression")
                    else None
                ),
            )
        )
    return tuple(out)


def actions(
    doc: Document, path: PathKey, raw: Sequence[str] | None, problems: list[Problem]
) -> frozenset[Action]:
    chosen = frozenset(_ACTIONS[a] for a in raw or ("Deny",))
    if {Action.DENY, Action.WARN} <= chosen:
        problems.append(doc.problem(errors.INVALID_VALUE, "Deny and Warn cannot be used together", path))
    return chosen


def policy(doc: Document, problems: list[Problem]) -> Policy:
    spec = doc.data["spec"]
    meta = doc.data["metadata"]
    notes = meta.get("annotations") or {}
    match = match_resources(spec.get("matchConstraints"))
    simple = spec.get("match") or {}
    match = Match(
        resource_rules=match.resource_rules,
        exclude_resource_rules=match.exclude_resource_rules,
        namespace_selector=match.namespace_selector,
        object_selector=match.object_selector,
        kinds=kind_rules(simple.get("kinds")),
        operations=tuple(simple.get("operations") or ()),
    )
    variables = tuple(
        Variable(str(v["name"]), expr(doc, ("spec", "variables", i, "expression"), str(v["expression"])))
        for i, v in enumerate(spec.get("variables") or ())
    )
    annotations = tuple(
        NamedExpr(
            str(a["key"]),
            expr(doc, ("spec", "auditAnnotations", i, "valueExpression"), str(a["valueExpression"])),
        )
        for i, a in enumerate(spec.get("auditAnnotations") or ())
    )
    return Policy(
        name=str(meta["name"]),
        source=SourceRef(doc.file, doc.line),
        origin="Policy",
        match=match,
        match_conditions=named_exprs(doc, ("spec", "matchConditions"), spec.get("matchConditions")),
        variables=variables,
        validations=validations(doc, ("spec", "validations"), spec["validations"]),
        audit_annotations=annotations,
        failure_policy=FailurePolicy(spec.get("failurePolicy", "Fail")),
        actions=actions(doc, ("spec", "validationActions"), spec.get("validationActions"), problems),
        category=str(notes.get(ANNOTATION + "category", "")),
        severity=str(notes.get(ANNOTATION + "severity", "")),
        description=str(notes.get(ANNOTATION + "description", "")),
        remediation=str(notes.get(ANNOTATION + "remediation", "")),
        requires_config=_requires_config(doc, notes, problems),
        background=background(doc, problems),
        webhook_failure_policy=webhook_failure_policy(doc, problems),
    )


def _requires_config(doc: Document, notes: Mapping[str, Any], problems: list[Problem]) -> tuple[str, ...]:
    value = notes.get(requirements.ANNOTATION)
    if not isinstance(value, str):
        return ()
    needs, why = requirements.parse(value)
    if why is not None:
        at = ("metadata", "annotations", requirements.ANNOTATION)
        problems.append(doc.problem(errors.INVALID_VALUE, f"{requirements.ANNOTATION} {why}", at))
    return needs


FAILURE_POLICY = ANNOTATION + "failure-policy"
FAILURE_POLICIES = ("Fail", "Ignore")


def webhook_failure_policy(doc: Document, problems: list[Problem]) -> str:
    """``policyengine.io/failure-policy``: what the API server does with the requests this policy judges
    when the webhook cannot answer (``webhook-config`` puts them in the entry of that failurePolicy)."""
    notes = doc.data.get("metadata", {}).get("annotations") or {}
    value = notes.get(FAILURE_POLICY)
    if value is None:
        return ""
    if value not in FAILURE_POLICIES:
        shown = repr(value)[:80]  # a hostile value is shown cut, never whole
        message = f'{FAILURE_POLICY} must be "Fail" or "Ignore", not {shown}'
        problems.append(
            doc.problem(errors.INVALID_VALUE, message, ("metadata", "annotations", FAILURE_POLICY))
        )
        return ""
    return str(value)


BACKGROUND = ANNOTATION + "background"


def background(doc: Document, problems: list[Problem]) -> bool:
    """Whether a background scan runs the policy: ``policyengine.io/background: "false"`` keeps it to
    admission, as Kyverno's ``background: false``. A scan judges each object as a CREATE with no user and
    no old object, so a policy reading ``request.userInfo`` or ``oldObject`` must carry it."""
    notes = doc.data.get("metadata", {}).get("annotations") or {}
    value = str(notes.get(BACKGROUND, "true"))
    if value not in ("true", "false"):
        message = f'{BACKGROUND} must be "true" or "false", not {value!r}'
        problems.append(doc.problem(errors.INVALID_VALUE, message, ("metadata", "annotations", BACKGROUND)))
    return value != "false"


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp with a zone ("2026-12-31T00:00:00Z"), or None when it is not one."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def exception(doc: Document, problems: list[Problem]) -> PolicyException:
    spec = doc.data["spec"]
    raw_match = spec.get("match") or {}
    expires = None
    if "expires" in spec:
        expires = parse_time(str(spec["expires"]))
        if expires is None:
            problems.append(
                doc.problem(
                    errors.INVALID_VALUE,
                    f"expires {spec['expires']!r} is not an RFC 3339 time with a zone (2026-12-31T00:00:00Z)",
                    ("spec", "expires"),
                )
            )
    return PolicyException(
        name=doc.name,
        source=SourceRef(doc.file, doc.line),
        policies=tuple(spec["policies"]),
        match=ExceptionMatch(
            namespaces=tuple(raw_match.get("namespaces") or ()),
            names=tuple(raw_match.get("names") or ()),
            kinds=kind_rules(raw_match.get("kinds")),
            selector=selector(raw_match.get("selector")),
        ),
        match_conditions=named_exprs(doc, ("spec", "matchConditions"), spec.get("matchConditions")),
        expires=expires,
        reason=str(spec.get("reason", "")),
        approved_by=str(spec.get("approvedBy", "")),
    )


def merge_config(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """GovernanceConfig specs merge by section, and within a section the later document wins per key."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value
    return merged


def resolve_config_paths(spec: Mapping[str, Any], base: str) -> dict[str, Any]:
    """Relative file paths in a GovernanceConfig (attestations, trusted key files, CA certificates, a
    trust root file) are relative to the folder of the file that names them."""
    models = spec.get("models")
    if not isinstance(models, Mapping):
        return dict(spec)

    def rebase(value: Any) -> Any:
        return (
            str(Path(base) / value)
            if isinstance(value, str) and value and not Path(value).is_absolute()
            else value
        )

    resolved = dict(models)
    if "attestations" in resolved:
        resolved["attestations"] = rebase(resolved["attestations"])
    if isinstance(resolved.get("trustedKeys"), list):
        resolved["trustedKeys"] = [
            {**k, "path": rebase(k["path"])} if isinstance(k, Mapping) and "path" in k else k
            for k in resolved["trustedKeys"]
        ]
    if isinstance(resolved.get("caCertificates"), list):
        resolved["caCertificates"] = [rebase(c) for c in resolved["caCertificates"]]
    if resolved.get("trustRoot") not in (None, "production", "staging"):  # the others name a file
        resolved["trustRoot"] = rebase(resolved["trustRoot"])
    return {**spec, "models": resolved}
