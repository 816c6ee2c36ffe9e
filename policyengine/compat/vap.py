"""``admissionregistration.k8s.io`` ValidatingAdmissionPolicy + ValidatingAdmissionPolicyBinding -> Policy.

Kubernetes semantics: a policy does nothing until a binding names it, and each (policy, binding) pair is
evaluated on its own. So each pair becomes one ``Policy`` whose match is the policy's matchConstraints
intersected (``Match.also``) with the binding's matchResources, whose actions are the binding's
validationActions, and whose ``param_ref`` is the binding's paramRef of the policy's paramKind.

Naming: the pair is called ``<policy>`` when the policy has exactly one binding, else
``<policy>/<binding>``, so results read like the policy users wrote. Documents of a paramKind found among
the policy documents are claimed as param objects (they are looked up at evaluation time together with
the inventory's objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policyengine import errors, native
from policyengine.cel import Declarations
from policyengine.compat import Converted
from policyengine.errors import Problem
from policyengine.loader import Document
from policyengine.model import FailurePolicy, Match, NamedExpr, ParamRef, Policy, SourceRef, Variable
from policyengine.schema import validate

GROUP = "admissionregistration.k8s.io"
VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
POLICY_KIND = "ValidatingAdmissionPolicy"
BINDING_KIND = "ValidatingAdmissionPolicyBinding"
# Kubernetes' bindings; ``authorizer`` is not among them: no API server authorizer is at hand here.
DECLARED = Declarations(POLICY_KIND, native.ADMISSION_ROOTS)
_SCHEMAS = {
    POLICY_KIND: "validating-admission-policy.json",
    BINDING_KIND: "validating-admission-policy-binding.json",
}


def _is_vap(doc: Document) -> bool:
    return doc.api_version in VERSIONS and doc.kind in _SCHEMAS


def convert(docs: Sequence[Document], problems: list[Problem], out: Converted) -> None:
    """Claim ValidatingAdmissionPolicies, their bindings and param objects; add one Policy per pair."""
    policies: dict[str, Document] = {}
    bindings: list[Document] = []
    for doc in docs:
        if not _is_vap(doc):
            continue
        out.claimed.add(id(doc))
        found = validate(doc, _SCHEMAS[doc.kind])
        if found:
            problems.extend(found)
            continue
        if doc.kind == POLICY_KIND:
            first = policies.setdefault(doc.name, doc)
            if first is not doc:
                problems.append(
                    doc.problem(
                        errors.DUPLICATE_NAME,
                        f"ValidatingAdmissionPolicy {doc.name!r} is already defined at {first.file}:{first.line}",
                        ("metadata", "name"),
                    )
                )
        else:
            bindings.append(doc)

    _claim_params(docs, policies.values(), out)

    by_policy: dict[str, list[Document]] = {}
    for binding in bindings:
        name = str(binding.data["spec"]["policyName"])
        if name not in policies:
            problems.append(
                binding.problem(
                    errors.UNKNOWN_POLICY,
                    f"binding {binding.name!r} names ValidatingAdmissionPolicy {name!r}, which is not loaded",
                    ("spec", "policyName"),
                )
            )
            continue
        by_policy.setdefault(name, []).append(binding)

    for name, doc in policies.items():
        bound = by_policy.get(name, [])
        if not bound:
            out.notes.append(
                f"{doc.file}:{doc.line}: ValidatingAdmissionPolicy {name!r} has no binding, so it does nothing"
            )
        for binding in bound:
            pair = name if len(bound) == 1 else f"{name}/{binding.name}"
            out.policies.append(bound_policy(doc, binding, pair, problems))


def _claim_params(docs: Sequence[Document], policies: Iterable[Document], out: Converted) -> None:
    kinds = set()
    for doc in policies:
        param_kind = doc.data["spec"].get("paramKind")
        if isinstance(param_kind, Mapping):
            kinds.add((str(param_kind["apiVersion"]), str(param_kind["kind"])))
    params = []
    for doc in docs:
        if id(doc) not in out.claimed and (doc.api_version, doc.kind) in kinds:
            out.claimed.add(id(doc))
            params.append(doc.data)
    out.param_objects = (*out.param_objects, *params)


def param_ref(policy_spec: Mapping[str, Any], binding_spec: Mapping[str, Any]) -> ParamRef | None:
    """The binding's paramRef for the policy's paramKind. A policy without paramKind ignores the
    paramRef; a paramKind without paramRef is kept (name and selector unset) and fails at evaluation
    as Kubernetes does, under the policy's failurePolicy."""
    kind = policy_spec.get("paramKind")
    if not isinstance(kind, Mapping):
        return None
    raw = binding_spec.get("paramRef") or {}
    return ParamRef(
        api_version=str(kind["apiVersion"]),
        kind=str(kind["kind"]),
        name=str(raw["name"]) if raw.get("name") else None,
        namespace=str(raw["namespace"]) if raw.get("namespace") else None,
        selector=native.selector(raw.get("selector")),
        not_found_action=str(raw.get("parameterNotFoundAction") or "Deny"),
    )


def bound_policy(doc: Document, binding: Document, name: str, problems: list[Problem]) -> Policy:
    """One (policy, binding) pair as a Policy."""
    spec = doc.data["spec"]
    bspec = binding.data["spec"]
    match = native.match_resources(spec.get("matchConstraints"))
    binding_match = native.match_resources(bspec.get("matchResources"))
    variables = tuple(
        Variable(
            str(v["name"]), native.expr(doc, ("spec", "variables", i, "expression"), str(v["expression"]))
        )
        for i, v in enumerate(spec.get("variables") or ())
    )
    annotations = tuple(
        NamedExpr(
            str(a["key"]),
            native.expr(doc, ("spec", "auditAnnotations", i, "valueExpression"), str(a["valueExpression"])),
        )
        for i, a in enumerate(spec.get("auditAnnotations") or ())
    )
    return Policy(
        name=name,
        source=SourceRef(doc.file, doc.line),
        origin=POLICY_KIND,
        match=Match(
            resource_rules=match.resource_rules,
            exclude_resource_rules=match.exclude_resource_rules,
            namespace_selector=match.namespace_selector,
            object_selector=match.object_selector,
            also=(binding_match,),
        ),
        match_conditions=native.named_exprs(doc, ("spec", "matchConditions"), spec.get("matchConditions")),
        variables=variables,
        validations=native.validations(doc, ("spec", "validations"), spec.get("validations") or ()),
        audit_annotations=annotations,
        failure_policy=FailurePolicy(spec.get("failurePolicy", "Fail")),
        actions=native.actions(binding, ("spec", "validationActions"), bspec["validationActions"], problems),
        param_ref=param_ref(spec, bspec),
        uses_config_params=False,
        description=str((doc.data["metadata"].get("annotations") or {}).get("description", "")),
        background=native.background(doc, problems),
        webhook_failure_policy=native.webhook_failure_policy(doc, problems),
    )
