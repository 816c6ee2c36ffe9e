"""A policy's ``Match`` as a ValidatingAdmissionPolicy's matchConstraints, its binding's matchResources and,
for what resource rules cannot say (Gatekeeper kinds, namespace and name patterns, scope), matchConditions
that decide exactly as ``policyengine.match`` does.

A policy matching by kind matches every resource and subresource (``*/*``) of its operations, and a
condition reads ``request.kind``: a kind names no resource, and the API server resolves plurals itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.model import KindRule, LabelSelector, Match, ResourceRule

DEFAULT_OPERATIONS = ("CREATE", "UPDATE")  # policyengine.match: a kind match without operations
PREFIX = "policyengine.io/"  # the names of the conditions added here
# The namespace a request is judged by: a Namespace's own name, else the request's namespace.
_NS = "(request.kind.group == '' && request.kind.kind == 'Namespace' ? request.name : request.namespace)"


class Unmatchable(ValueError):
    """The match cannot be written as a ValidatingAdmissionPolicy's; the message says why."""


@dataclass
class Translated:
    constraints: dict[str, Any]
    conditions: list[dict[str, str]] = field(default_factory=list)
    binding: dict[str, Any] | None = None


def _q(value: str) -> str:
    return json.dumps(value)


def selector(sel: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in sel.match_expressions
        ]
    return out


def rule(r: ResourceRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiGroups": list(r.api_groups),
        "apiVersions": list(r.api_versions),
        "operations": list(r.operations),
        "resources": list(r.resources),
    }
    if r.resource_names:
        out["resourceNames"] = list(r.resource_names)
    if r.scope != "*":
        out["scope"] = r.scope
    return out


def _selectors(match: Match, out: dict[str, Any]) -> None:
    if match.namespace_selector is not None:
        out["namespaceSelector"] = selector(match.namespace_selector)
    if match.object_selector is not None:
        out["objectSelector"] = selector(match.object_selector)


def _any_of(values: Sequence[str], subject: str) -> str:
    if "*" in values:
        return "true"
    return " || ".join(f"{subject} == {_q(v)}" for v in values)


def _kind_condition(kinds: Sequence[KindRule]) -> str:
    parts = [
        f"(({_any_of(k.api_groups, 'request.kind.group')}) && ({_any_of(k.kinds, 'request.kind.kind')}))"
        for k in kinds
    ]
    return " || ".join(parts)


def _pattern(pattern: str, subject: str) -> str:
    """``policyengine.match.wildcard_match`` in CEL."""
    if pattern.endswith("*"):
        return f"{subject}.startsWith({_q(pattern[:-1])})"
    if pattern.startswith("*"):
        return f"{subject}.endsWith({_q(pattern[1:])})"
    return f"{subject} == {_q(pattern)}"


def _patterns(patterns: Sequence[str], subject: str) -> str:
    return " || ".join(_pattern(p, subject) for p in patterns)


def _conditions(match: Match) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if match.kinds:
        out.append({"name": f"{PREFIX}kinds", "expression": _kind_condition(match.kinds)})
    if match.scope in ("Cluster", "Namespaced"):
        test = "==" if match.scope == "Cluster" else "!="
        out.append({"name": f"{PREFIX}scope", "expression": f"request.namespace {test} ''"})
    if match.namespaces:
        expr = f"{_NS} == '' || {_patterns(match.namespaces, _NS)}"
        out.append({"name": f"{PREFIX}namespaces", "expression": expr})
    if match.excluded_namespaces:
        expr = f"{_NS} == '' || !({_patterns(match.excluded_namespaces, _NS)})"
        out.append({"name": f"{PREFIX}excluded-namespaces", "expression": expr})
    if match.names:
        out.append({"name": f"{PREFIX}names", "expression": _patterns(match.names, "request.name")})
    return out


def _plain(match: Match) -> bool:
    """Whether resource rules and selectors alone say all of ``match``."""
    return (
        not (match.kinds or match.namespaces or match.excluded_namespaces or match.names or match.also)
        and match.scope == "*"
    )


def translate(match: Match) -> Translated:
    """matchConstraints (+ conditions, + the binding's matchResources) deciding as ``match`` does."""
    if match.kinds and match.resource_rules:
        raise Unmatchable("it matches by resource rules and by kinds at once")
    constraints: dict[str, Any] = {}
    if match.resource_rules:
        constraints["resourceRules"] = [rule(r) for r in match.resource_rules]
    else:
        ops = list(match.operations or (DEFAULT_OPERATIONS if match.kinds else ("*",)))
        constraints["resourceRules"] = [
            {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ops, "resources": ["*/*"]}
        ]
    if match.exclude_resource_rules:
        constraints["excludeResourceRules"] = [rule(r) for r in match.exclude_resource_rules]
    _selectors(match, constraints)
    out = Translated(constraints, _conditions(match))
    if len(match.also) > 1 or any(not _plain(m) for m in match.also):
        raise Unmatchable("its binding's match is not made of resource rules and selectors")
    if match.also:
        binding: dict[str, Any] = {}
        also = match.also[0]
        if also.resource_rules:
            binding["resourceRules"] = [rule(r) for r in also.resource_rules]
        if also.exclude_resource_rules:
            binding["excludeResourceRules"] = [rule(r) for r in also.exclude_resource_rules]
        _selectors(also, binding)
        out.binding = binding
    return out
