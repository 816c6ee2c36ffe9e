"""Kyverno's autogen of a ValidatingPolicy to pod controllers (``pkg/cel/policies/vpol/autogen``).

A policy whose matchConstraints select exactly ``v1 pods`` (no object selector, no exclusions, no
resource names) also runs on the pod controllers: one generated spec for Deployments, StatefulSets,
DaemonSets, Jobs and ReplicaSets (``object.spec`` -> ``object.spec.template.spec``), one for CronJobs
(``object.spec`` -> ``object.spec.jobTemplate.spec.template.spec``), and ``object.metadata`` likewise
rewritten to the template's, except ``.metadata.namespace``, which stays the workload's. The rewrite is
textual over the whole spec, as Kyverno's is, so the generated policies give Kyverno's verdicts.
``spec.autogen.podControllers.controllers`` narrows the controllers (an empty list: none).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

# config name -> (group, version, resource), as Kyverno's ``ConfigsMap``
CONTROLLERS = {
    "daemonsets": ("apps", "v1", "daemonsets", "defaults"),
    "deployments": ("apps", "v1", "deployments", "defaults"),
    "replicasets": ("apps", "v1", "replicasets", "defaults"),
    "statefulsets": ("apps", "v1", "statefulsets", "defaults"),
    "jobs": ("batch", "v1", "jobs", "defaults"),
    "cronjobs": ("batch", "v1", "cronjobs", "cronjobs"),
}
REPLACEMENTS = {
    "defaults": (("spec", "spec.template.spec"), ("metadata", "spec.template.metadata")),
    "cronjobs": (
        ("spec", "spec.jobTemplate.spec.template.spec"),
        ("metadata", "spec.jobTemplate.spec.template.metadata"),
    ),
}
# The name each generated policy gets after its source's: Kyverno's autogen rule prefixes.
SUFFIX = {"defaults": "autogen", "cronjobs": "autogen-cronjobs"}
# The policy that runs the pod rule on each pod template of the AI workload kinds (workloads/podobjects.py).
WORKLOADS_SUFFIX = "autogen-workloads"


def can_autogen(match: Any) -> bool:
    """Kyverno's ``CanAutoGen``."""
    if not isinstance(match, Mapping):
        return False
    selector = match.get("objectSelector")
    if isinstance(selector, Mapping) and (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    if match.get("excludeResourceRules"):
        return False
    rules = match.get("resourceRules")
    if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], Mapping):
        return False
    rule = rules[0]
    return (
        not rule.get("resourceNames")
        and rule.get("apiGroups") == [""]
        and rule.get("apiVersions") == ["v1"]
        and rule.get("resources") == ["pods"]
    )


def _controllers(spec: Mapping[str, Any]) -> list[str]:
    config = spec.get("autogen")
    pods = config.get("podControllers") if isinstance(config, Mapping) else None
    chosen = pods.get("controllers") if isinstance(pods, Mapping) else None
    if isinstance(chosen, list):
        return [str(c) for c in chosen if str(c) in CONTROLLERS]
    return list(CONTROLLERS)


def autogen_specs(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name suffix, generated spec) for each group of pod controllers ``spec`` autogenerates to."""
    if not can_autogen(spec.get("matchConstraints")):
        return
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for name in _controllers(spec):
        group, version, resource, config = CONTROLLERS[name]
        groups.setdefault(config, []).append((group, version, resource))
    operations = spec["matchConstraints"]["resourceRules"][0].get("operations") or []
    for config in sorted(groups):
        generated = copy.deepcopy(dict(spec))
        generated["matchConstraints"] = _match(groups[config], operations, spec["matchConstraints"])
        yield SUFFIX[config], _rewrite(generated, REPLACEMENTS[config])


def _match(
    targets: list[tuple[str, str, str]], operations: list[Any], source: Mapping[str, Any]
) -> dict[str, Any]:
    """Kyverno's ``CreateMatchConstraints``: one rule per group/version, the source's namespaceSelector."""
    by_gv: dict[tuple[str, str], set[str]] = {}
    for group, version, resource in targets:
        by_gv.setdefault((group, version), set()).add(resource)
    rules = [
        {"apiGroups": [g], "apiVersions": [v], "resources": sorted(r), "operations": list(operations)}
        for (g, v), r in sorted(by_gv.items())
    ]
    out: dict[str, Any] = {"resourceRules": rules}
    if source.get("namespaceSelector") is not None:
        out["namespaceSelector"] = copy.deepcopy(source["namespaceSelector"])
    return out


def _rewrite(spec: dict[str, Any], replacements: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    # Kyverno marshals the spec to JSON and rewrites the bytes; over the decoded strings it is the same.
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in replacements:
                value = rewrite_paths(value, old, new)
            return value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    rewritten: dict[str, Any] = walk(spec)
    return rewritten


def rewrite_paths(text: str, old: str, new: str) -> str:
    """Kyverno's ``Replacement.Apply``: ``object.<old>`` and ``oldObject.<old>`` become ``.<new>``,
    unless followed by ``.namespace`` (a whole segment), which stays the workload's own."""
    for root in ("object.", "oldObject."):
        pattern = re.compile(re.escape(root + old) + r"(?!\.namespace(?![A-Za-z0-9_]))")
        text = pattern.sub((root + new).replace("\\", "\\\\"), text)
    return text
