"""Kyverno ``policies.kyverno.io`` ValidatingPolicy, NamespacedValidatingPolicy and PolicyException -> the
same model as native policies.

A ValidatingPolicy is a ValidatingAdmissionPolicy that binds itself: its matchConstraints, matchConditions,
variables, validations, auditAnnotations and validationActions load as a VAP's do. On top of that:

* ``evaluation.admission.enabled`` / ``evaluation.background.enabled`` are kept on the policy (a policy
  with admission off never runs at admission; a background scan reads the other switch);
* autogen, as Kyverno does it (``pkg/cel/policies/vpol/autogen``): a policy matching only ``v1 pods``
  also yields one policy for Deployments, StatefulSets, DaemonSets, Jobs and ReplicaSets and one for
  CronJobs, whose expressions have ``object.spec``/``object.metadata`` rewritten to the pod template's
  (``kyverno_autogen.py``), and one for the AI workload kinds (PyTorchJob, RayCluster, ...) that runs the
  pod rule on each pod template the workload view finds, with the template's field paths;
* the functions that read the network or the clock (``http.*``, ``image.GetMetadata``, ``time.now``, ...)
  are refused at load: a verdict must not depend on where or when it is computed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from policyengine import errors, native
from policyengine.cel import Declarations
from policyengine.compat import Converted
from policyengine.compat.kyverno_autogen import SUFFIX, WORKLOADS_SUFFIX, autogen_specs, can_autogen
from policyengine.errors import Problem
from policyengine.loader import Document, PathKey
from policyengine.model import (
    ExceptionMatch,
    FailurePolicy,
    KindRule,
    Match,
    NamedExpr,
    Policy,
    PolicyException,
    SourceRef,
    Variable,
)
from policyengine.workloads.kinds import AI_KINDS

GROUP = "policies.kyverno.io"
VERSIONS = frozenset(f"{GROUP}/{v}" for v in ("v1alpha1", "v1beta1", "v1"))
POLICY_KIND = "ValidatingPolicy"
NAMESPACED_KIND = "NamespacedValidatingPolicy"
EXCEPTION_KIND = "PolicyException"
ORIGIN = POLICY_KIND
# Kyverno's bindings, plus the names of its CEL libraries (``json.unmarshal(s)``, ``resource.List(...)``).
LIBRARY_ROOTS = frozenset({"json", "yaml", "resource", "http", "image", "imagedata", "globalContext"})
DECLARED = Declarations(POLICY_KIND, native.ADMISSION_ROOTS | LIBRARY_ROOTS)
EXCEPTION_DECLARED = Declarations(EXCEPTION_KIND, native.ADMISSION_ROOTS | LIBRARY_ROOTS)

_NETWORK = "reads the network"
_CLOCK = "reads the clock"
# (pattern over the expression with its string literals blanked, what it does)
_REFUSED = (
    (re.compile(r"\bhttp\s*\.\s*(Get|Post|Client|get|post|client)\s*\("), f"http.*: {_NETWORK}"),
    (re.compile(r"\bimage\s*\.\s*GetMetadata\s*\("), f"image.GetMetadata: {_NETWORK} (an image registry)"),
    (re.compile(r"\bimagedata\s*\.\s*(Get|get)\s*\("), f"imagedata.Get: {_NETWORK} (an image registry)"),
    (re.compile(r"\bglobalContext\s*\.\s*(Get|get)\s*\("), "globalContext.Get: reads a cluster cache"),
    (re.compile(r"\bresource\s*\.\s*(Post|post)\s*\("), "resource.Post: writes to the cluster"),
    (re.compile(r"\btime\s*\.\s*now\s*\("), f"time.now: {_CLOCK}"),
    (re.compile(r"(?<![\w.])random\s*\("), "random: differs on every evaluation"),
)
_STRING = re.compile(r"""'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""", re.S)
_ACTIONS = ("Deny", "Warn", "Audit")


def _is_kyverno(doc: Document) -> bool:
    return doc.api_version in VERSIONS and doc.kind in (POLICY_KIND, NAMESPACED_KIND, EXCEPTION_KIND)


def convert(docs: Sequence[Document], problems: list[Problem], out: Converted) -> None:
    """Claim Kyverno ValidatingPolicies and PolicyExceptions; add their policies and exceptions."""
    for doc in docs:
        if not _is_kyverno(doc):
            continue
        out.claimed.add(id(doc))
        found: list[Problem] = []
        try:
            _convert_one(doc, found, out)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            # A field of the wrong shape the checks above did not name: one problem, never a crash.
            message = f"not a valid {doc.kind}: {type(err).__name__}: {str(err)[:200]}"
            found.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec",)))
        problems.extend(found)
    _widen_exceptions(out)


def _convert_one(doc: Document, found: list[Problem], out: Converted) -> None:
    spec = _spec(doc, found)
    if spec is None:
        return
    if doc.kind == EXCEPTION_KIND:
        exc = _exception(doc, spec, found)
        if not found:
            out.exceptions.append(exc)
        return
    policies = _policies(doc, spec, found)
    if not found:
        out.policies.extend(policies)


def _widen_exceptions(out: Converted) -> None:
    """An exception of a policy also excepts the policies autogen made from it, as in Kyverno."""
    names = {p.name for p in out.policies}
    for i, exc in enumerate(out.exceptions):
        widened = [
            f"{name}/{suffix}"
            for name in exc.policies
            for suffix in (*SUFFIX.values(), WORKLOADS_SUFFIX)
            if f"{name}/{suffix}" in names
        ]
        if widened:
            out.exceptions[i] = replace(exc, policies=(*exc.policies, *widened))


def refused_functions(source: str) -> list[str]:
    """Why ``source`` cannot run here: each network, clock or write function it calls."""
    bare = _STRING.sub("''", source)
    return [why for pattern, why in _REFUSED if pattern.search(bare)]


def _spec(doc: Document, problems: list[Problem]) -> Mapping[str, Any] | None:
    spec = doc.data.get("spec")
    if not isinstance(spec, Mapping):
        problems.append(doc.problem(errors.SCHEMA_INVALID, "spec must be an object", ("spec",)))
        return None
    _check_shape(doc, spec, problems)
    return spec


def _check_shape(doc: Document, spec: Mapping[str, Any], problems: list[Problem]) -> None:
    """What the CRD's schema says of the fields loaded here: lists of objects with string expressions."""
    fields = {
        "validations": "expression",
        "matchConditions": "expression",
        "variables": "expression",
        "auditAnnotations": "valueExpression",
    }
    for name, key in fields.items():
        raw = spec.get(name)
        if raw is None:
            continue
        if not isinstance(raw, list):
            problems.append(doc.problem(errors.SCHEMA_INVALID, f"{name} must be a list", ("spec", name)))
            continue
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or not isinstance(item.get(key), str):
                message = f"{name}[{i}] must be an object with a string {key}"
                problems.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec", name, i)))
            elif name != "validations" and not isinstance(
                item.get("key" if key != "expression" else "name"), str
            ):
                message = f"{name}[{i}] must have a string {'key' if key != 'expression' else 'name'}"
                problems.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec", name, i)))
    for action in spec.get("validationActions") or ():
        if action not in _ACTIONS:
            message = f"validationActions: {action!r} is not one of {', '.join(_ACTIONS)}"
            problems.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec", "validationActions")))
    if spec.get("failurePolicy", "Fail") not in ("Fail", "Ignore"):
        message = f"failurePolicy {spec.get('failurePolicy')!r} is not Fail or Ignore"
        problems.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec", "failurePolicy")))
    if not problems:
        _check_refused(doc, spec, problems)


def _check_refused(doc: Document, spec: Mapping[str, Any], problems: list[Problem]) -> None:
    for path, source in _expressions(spec):
        for why in refused_functions(source):
            message = f"refused: {why}; no network or clock at admission, so one verdict everywhere"
            problems.append(doc.problem(errors.UNSUPPORTED, message, path))


def _expressions(spec: Mapping[str, Any]) -> list[tuple[PathKey, str]]:
    out: list[tuple[PathKey, str]] = []
    for name, keys in (
        ("validations", ("expression", "messageExpression")),
        ("matchConditions", ("expression",)),
        ("variables", ("expression",)),
        ("auditAnnotations", ("valueExpression",)),
    ):
        for i, item in enumerate(spec.get(name) or ()):
            out.extend((("spec", name, i, k), str(item[k])) for k in keys if isinstance(item.get(k), str))
    return out


def _switch(spec: Mapping[str, Any], which: str) -> bool:
    """Kyverno's ``AdmissionEnabled`` / ``BackgroundEnabled``: true unless set to false."""
    evaluation = spec.get("evaluation")
    section = evaluation.get(which) if isinstance(evaluation, Mapping) else None
    enabled = section.get("enabled") if isinstance(section, Mapping) else None
    return enabled is not False


def _policies(doc: Document, spec: Mapping[str, Any], problems: list[Problem]) -> list[Policy]:
    name = doc.name
    namespace = ""
    if doc.kind == NAMESPACED_KIND:
        namespace = str((doc.data.get("metadata") or {}).get("namespace") or "")
        if not namespace:
            problems.append(
                doc.problem(
                    errors.SCHEMA_INVALID,
                    "a NamespacedValidatingPolicy needs metadata.namespace",
                    ("metadata",),
                )
            )
            return []
        name = f"{namespace}/{name}"
    out = [_policy(doc, spec, name, namespace, problems)]
    for suffix, generated in autogen_specs(spec):
        out.append(_policy(doc, generated, f"{name}/{suffix}", namespace, problems))
    if can_autogen(spec.get("matchConstraints")):
        # The AI workload kinds: the pod rule itself, run on each pod template the workload view finds.
        pod = _policy(doc, spec, f"{name}/{WORKLOADS_SUFFIX}", namespace, problems)
        rule = spec["matchConstraints"]["resourceRules"][0]
        match = Match(
            kinds=(KindRule(("*",), tuple(sorted(AI_KINDS))),),
            operations=tuple(str(o) for o in rule.get("operations") or ()),
            namespace_selector=pod.match.namespace_selector,
        )
        out.append(replace(pod, match=match, pod_templates=True))
    return out


def _policy(
    doc: Document, spec: Mapping[str, Any], name: str, namespace: str, problems: list[Problem]
) -> Policy:
    meta = doc.data.get("metadata") or {}
    notes = meta.get("annotations") or {}
    match = native.match_resources(spec.get("matchConstraints"))
    conditions = native.named_exprs(doc, ("spec", "matchConditions"), spec.get("matchConditions"))
    if namespace:
        # A namespaced policy sees only the resources of its own namespace.
        only = native.expr(doc, ("metadata", "namespace"), f"request.namespace == {_quote(namespace)}")
        conditions = (NamedExpr("kyverno-policy-namespace", only), *conditions)
    return Policy(
        name=name,
        source=SourceRef(doc.file, doc.line),
        origin=ORIGIN,
        match=match,
        match_conditions=conditions,
        variables=tuple(
            Variable(
                str(v["name"]), native.expr(doc, ("spec", "variables", i, "expression"), str(v["expression"]))
            )
            for i, v in enumerate(spec.get("variables") or ())
        ),
        validations=native.validations(doc, ("spec", "validations"), spec.get("validations") or ()),
        audit_annotations=tuple(
            NamedExpr(
                str(a["key"]),
                native.expr(
                    doc, ("spec", "auditAnnotations", i, "valueExpression"), str(a["valueExpression"])
                ),
            )
            for i, a in enumerate(spec.get("auditAnnotations") or ())
        ),
        failure_policy=FailurePolicy(spec.get("failurePolicy", "Fail")),
        actions=native.actions(doc, ("spec", "validationActions"), spec.get("validationActions"), problems),
        uses_config_params=False,
        admission=_switch(spec, "admission"),
        background=_switch(spec, "background"),
        description=str(notes.get("policies.kyverno.io/description", "")),
        category=str(notes.get("policies.kyverno.io/category", "")),
        severity=str(notes.get("policies.kyverno.io/severity", "")),
    )


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _exception(doc: Document, spec: Mapping[str, Any], problems: list[Problem]) -> PolicyException:
    """A Kyverno PolicyException: its policyRefs' ValidatingPolicies (and their autogen variants) are
    excepted wherever its matchConditions hold; a namespaced exception only in its own namespace."""
    refs = spec.get("policyRefs")
    names: list[str] = []
    if not isinstance(refs, list) or not refs:
        problems.append(
            doc.problem(errors.SCHEMA_INVALID, "policyRefs must be a non-empty list", ("spec", "policyRefs"))
        )
    else:
        for i, ref in enumerate(refs):
            if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
                message = f"policyRefs[{i}] must be an object with a string name"
                problems.append(doc.problem(errors.SCHEMA_INVALID, message, ("spec", "policyRefs", i)))
                continue
            names.append(_ref_name(doc, ref))
    _check_shape(doc, {"matchConditions": spec.get("matchConditions")}, problems)
    namespace = str((doc.data.get("metadata") or {}).get("namespace") or "")
    return PolicyException(
        name=f"{namespace}/{doc.name}" if namespace else doc.name,
        source=SourceRef(doc.file, doc.line),
        policies=tuple(names),
        match=ExceptionMatch(namespaces=(namespace,) if namespace else ()),
        match_conditions=native.named_exprs(doc, ("spec", "matchConditions"), spec.get("matchConditions")),
        reason=str(
            (doc.data.get("metadata") or {}).get("annotations", {}).get("policies.kyverno.io/description", "")
        ),
    )


def _ref_name(doc: Document, ref: Mapping[str, Any]) -> str:
    # A reference to a NamespacedValidatingPolicy names one of the exception's own namespace.
    if ref.get("kind") == NAMESPACED_KIND:
        namespace = str((doc.data.get("metadata") or {}).get("namespace") or "")
        return f"{namespace}/{ref['name']}"
    return str(ref["name"])


__all__ = ["DECLARED", "EXCEPTION_DECLARED", "ORIGIN", "convert", "refused_functions"]
