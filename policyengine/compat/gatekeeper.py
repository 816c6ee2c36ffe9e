"""Gatekeeper ``ConstraintTemplate`` (K8sNativeValidation code) and its constraints -> Policy.

Each constraint becomes one Policy named after the constraint (``<Kind>/<name>`` when constraints of
different kinds share a name). As Gatekeeper's CEL driver does, the template's CEL source is run as a
ValidatingAdmissionPolicy whose ``params`` is the whole constraint, with two variables placed before the
template's own: ``variables.params`` (the constraint's ``spec.parameters``, or null) and
``variables.anyObject`` (the object, or the old object on DELETE). A template with both Rego and CEL
runs its CEL; a Rego-only template is a load error. The constraint's ``spec.match`` is Gatekeeper's
matcher (kinds, namespaces, excludedNamespaces, labelSelector, namespaceSelector, scope, name); it
applies to every operation, since in Gatekeeper the webhook configuration, not the constraint, chooses
operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policyengine import errors, native
from policyengine.cel import Declarations
from policyengine.compat import Converted
from policyengine.errors import Problem
from policyengine.loader import Document, PathKey
from policyengine.model import (
    Action,
    Expr,
    FailurePolicy,
    Match,
    Policy,
    SourceRef,
    Variable,
)
from policyengine.schema import validate

TEMPLATE_GROUP = "templates.gatekeeper.sh"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
CEL_ENGINE = "K8sNativeValidation"
ADMISSION_TARGET = "admission.k8s.gatekeeper.sh"
ANY_OBJECT = 'has(request.operation) && request.operation == "DELETE" && object == null ? oldObject : object'
RESERVED_VARIABLES = ("params", "anyObject")
RESERVED_PREFIX = "gatekeeper_internal_"
# Enforcement points whose scoped actions apply here: admission and gator-like CI checks.
ENFORCEMENT_POINTS = ("validation.gatekeeper.sh", "gator.gatekeeper.sh", "*")
ORIGIN = "ConstraintTemplate"
# Gatekeeper's CEL driver binds what a ValidatingAdmissionPolicy gets (params: the constraint).
DECLARED = Declarations(ORIGIN, native.ADMISSION_ROOTS)
_ACTIONS = {"deny": Action.DENY, "warn": Action.WARN, "dryrun": Action.AUDIT}


class _Template:
    """A ConstraintTemplate whose CEL source was found, with the path to it."""

    def __init__(self, doc: Document, source: Mapping[str, Any], base: PathKey) -> None:
        self.doc = doc
        self.source = source
        self.base = base
        self.kind = str(doc.data["spec"]["crd"]["spec"]["names"]["kind"])
        validation = doc.data["spec"]["crd"]["spec"].get("validation") or {}
        schema = validation.get("openAPIV3Schema") if isinstance(validation, Mapping) else None
        self.schema = schema if isinstance(schema, Mapping) else None


def _group(doc: Document) -> str:
    return doc.api_version.rpartition("/")[0]


def convert(docs: Sequence[Document], problems: list[Problem], out: Converted) -> None:
    """Claim templates and constraints; add one Policy per constraint of a template with CEL code."""
    templates: dict[str, _Template] = {}
    rejected: set[str] = set()  # kinds of templates that failed to load: their constraints stay quiet
    constraints: list[Document] = []
    for doc in docs:
        group = _group(doc)
        if group == TEMPLATE_GROUP and doc.kind == "ConstraintTemplate":
            out.claimed.add(id(doc))
            template = _template(doc, problems)
            if template is None:
                kind = _declared_kind(doc)
                if kind:
                    rejected.add(kind)
            elif template.kind in templates:
                first = templates[template.kind].doc
                problems.append(
                    doc.problem(
                        errors.DUPLICATE_NAME,
                        f"a ConstraintTemplate for kind {template.kind} is already defined at {first.file}:{first.line}",
                        ("spec", "crd", "spec", "names", "kind"),
                    )
                )
            else:
                templates[template.kind] = template
        elif group == CONSTRAINT_GROUP:
            out.claimed.add(id(doc))
            constraints.append(doc)

    names: dict[str, set[str]] = {}
    for doc in constraints:
        names.setdefault(doc.name, set()).add(doc.kind)
    used: set[str] = set()
    for doc in constraints:
        template = templates.get(doc.kind)
        if template is None:
            if doc.kind not in rejected:
                problems.append(
                    doc.problem(
                        errors.UNKNOWN_KIND,
                        f"constraint {doc.name!r} is of kind {doc.kind}, but no ConstraintTemplate defines it",
                        ("kind",),
                    )
                )
            continue
        found = validate(doc, "constraint.json")
        if found:
            problems.extend(found)
            continue
        used.add(doc.kind)
        name = doc.name if len(names[doc.name]) == 1 else f"{doc.kind}/{doc.name}"
        out.policies.append(constraint_policy(template, doc, name, problems))
    for kind, template in templates.items():
        if kind not in used:
            t = template.doc
            out.notes.append(
                f"{t.file}:{t.line}: ConstraintTemplate {t.name!r} has no constraints, so it does nothing"
            )


def _declared_kind(doc: Document) -> str:
    try:
        return str(doc.data["spec"]["crd"]["spec"]["names"]["kind"])
    except (KeyError, TypeError):
        return ""


def _template(doc: Document, problems: list[Problem]) -> _Template | None:
    found = validate(doc, "constraint-template.json")
    if found:
        problems.extend(found)
        return None
    targets = doc.data["spec"]["targets"]
    if len(targets) != 1 or targets[0].get("target") != ADMISSION_TARGET:
        problems.append(
            doc.problem(
                errors.UNSUPPORTED,
                f"ConstraintTemplate {doc.name!r} must have exactly one target, {ADMISSION_TARGET}",
                ("spec", "targets"),
            )
        )
        return None
    code = targets[0].get("code") or []
    for i, block in enumerate(code):
        if block.get("engine") == CEL_ENGINE:
            template = _Template(doc, block["source"], ("spec", "targets", 0, "code", i, "source"))
            return template if _check_source(template, problems) else None
    problems.append(
        doc.problem(
            errors.UNSUPPORTED,
            f"ConstraintTemplate {doc.name!r} has only Rego code, and Rego is not supported: "
            f"add a {CEL_ENGINE} code block",
            ("spec", "targets", 0),
        )
    )
    return None


def _check_source(template: _Template, problems: list[Problem]) -> bool:
    ok = True
    source = template.source
    if not isinstance(source.get("validations") or [], list) or not isinstance(
        source.get("variables") or [], list
    ):
        problems.append(
            template.doc.problem(
                errors.SCHEMA_INVALID, "validations and variables must be lists", template.base
            )
        )
        return False
    for i, v in enumerate(source.get("variables") or ()):
        name = str(v.get("name", "")) if isinstance(v, Mapping) else ""
        if name in RESERVED_VARIABLES or name.startswith(RESERVED_PREFIX):
            problems.append(
                template.doc.problem(
                    errors.INVALID_VALUE,
                    f"variable name {name!r} is reserved by Gatekeeper",
                    (*template.base, "variables", i, "name"),
                )
            )
            ok = False
    if source.get("failurePolicy") not in (None, "Fail", "Ignore"):
        problems.append(
            template.doc.problem(
                errors.SCHEMA_INVALID,
                "failurePolicy must be Fail or Ignore",
                (*template.base, "failurePolicy"),
            )
        )
        ok = False
    for key in ("validations", "variables", "matchConditions"):
        for i, item in enumerate(source.get(key) or ()):
            if not isinstance(item, Mapping) or not isinstance(item.get("expression"), str):
                problems.append(
                    template.doc.problem(
                        errors.SCHEMA_INVALID, "an entry needs a string expression", (*template.base, key, i)
                    )
                )
                ok = False
    return ok


def match_of(raw: Mapping[str, Any] | None) -> Match:
    """A constraint's ``spec.match`` as a Match (every operation; namespaces with Gatekeeper wildcards)."""
    raw = raw or {}
    name = raw.get("name")
    return Match(
        kinds=native.kind_rules(raw.get("kinds")),
        operations=("*",),
        namespace_selector=native.selector(raw.get("namespaceSelector")),
        object_selector=native.selector(raw.get("labelSelector")),
        namespaces=tuple(str(n) for n in raw.get("namespaces") or ()),
        excluded_namespaces=tuple(str(n) for n in raw.get("excludedNamespaces") or ()),
        names=(str(name),) if name else (),
        scope=str(raw.get("scope") or "*"),
    )


def actions_of(doc: Document, problems: list[Problem]) -> frozenset[Action]:
    """enforcementAction deny | warn | dryrun (-> audit), or scoped with the actions of our points."""
    spec = doc.data.get("spec") or {}
    raw = str(spec.get("enforcementAction") or "deny")
    if raw in _ACTIONS:
        return frozenset({_ACTIONS[raw]})
    if raw != "scoped":
        problems.append(
            doc.problem(
                errors.INVALID_VALUE,
                f"enforcementAction {raw!r} is not one of deny, warn, dryrun, scoped",
                ("spec", "enforcementAction"),
            )
        )
        return frozenset({Action.DENY})
    chosen: set[Action] = set()
    for i, entry in enumerate(spec.get("scopedEnforcementActions") or ()):
        action = str(entry.get("action", ""))
        if action not in _ACTIONS:
            problems.append(
                doc.problem(
                    errors.INVALID_VALUE,
                    f"scoped action {action!r} is not one of deny, warn, dryrun",
                    ("spec", "scopedEnforcementActions", i, "action"),
                )
            )
            continue
        points = entry.get("enforcementPoints") or [{"name": "*"}]
        if any(isinstance(p, Mapping) and p.get("name") in ENFORCEMENT_POINTS for p in points):
            chosen.add(_ACTIONS[action])
    # Deny wins over warn for the same request, as the stricter action; no point of ours means audit only.
    for action in (Action.DENY, Action.WARN, Action.AUDIT):
        if action in chosen:
            return frozenset({action})
    return frozenset({Action.AUDIT})


def _check_parameters(template: _Template, doc: Document, problems: list[Problem]) -> None:
    """Constraint parameters against the template's openAPIV3Schema, as Gatekeeper's CRD would."""
    params = (doc.data.get("spec") or {}).get("parameters")
    if template.schema is None or params is None:
        return
    from jsonschema import Draft7Validator  # only a constraint with parameters needs it
    from jsonschema.exceptions import SchemaError

    try:
        validator = Draft7Validator(json_schema(template.schema))
        found = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    except SchemaError as err:
        problems.append(template.doc.problem(errors.SCHEMA_INVALID, f"openAPIV3Schema: {err.message}"))
        return
    for error in found:
        path = ("spec", "parameters", *error.absolute_path)
        problems.append(doc.problem(errors.SCHEMA_INVALID, error.message, path))


def json_schema(schema: Any) -> Any:
    """An OpenAPI v3 schema as JSON Schema: ``nullable: true`` becomes a type that also admits null."""
    if isinstance(schema, Mapping):
        out = {k: json_schema(v) for k, v in schema.items()}
        if out.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [json_schema(v) for v in schema]
    return schema


def constraint_policy(template: _Template, doc: Document, name: str, problems: list[Problem]) -> Policy:
    """One constraint of ``template`` as a Policy."""
    _check_parameters(template, doc, problems)
    source = template.source
    tdoc, base = template.doc, template.base
    spec = doc.data.get("spec") or {}
    any_object = Expr(ANY_OBJECT, "variables.anyObject", SourceRef(tdoc.file, tdoc.line_of(base)))
    variables = (
        Variable("params", value=spec.get("parameters")),
        Variable("anyObject", expression=any_object),
        *(
            Variable(
                str(v["name"]), native.expr(tdoc, (*base, "variables", i, "expression"), str(v["expression"]))
            )
            for i, v in enumerate(source.get("variables") or ())
        ),
    )
    notes = tdoc.data.get("metadata", {}).get("annotations") or {}
    return Policy(
        name=name,
        source=SourceRef(doc.file, doc.line),
        origin=ORIGIN,
        match=match_of(spec.get("match")),
        match_conditions=native.named_exprs(tdoc, (*base, "matchConditions"), source.get("matchConditions")),
        variables=variables,
        validations=native.validations(tdoc, (*base, "validations"), source.get("validations") or ()),
        failure_policy=FailurePolicy(source.get("failurePolicy") or "Fail"),
        actions=actions_of(doc, problems),
        params=doc.data,
        uses_config_params=False,
        description=str(notes.get("description", "")).strip(),
    )
