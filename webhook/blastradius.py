"""The blast radius of a ValidatingWebhookConfiguration as a Markdown table: which requests reach the
webhook, with what failure policy, and which namespaces never do (``webhook-config --format markdown``;
deploy/README.md shows it for the bundled packs and a test keeps the two equal)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _resource(group: str, resource: str) -> str:
    """``deployments.apps/scale``: kubectl's RESOURCE.GROUP, then the subresource."""
    base, slash, sub = resource.partition("/")
    return f"{base}.{group}{slash}{sub}" if group else resource


def _names(rule: Mapping[str, Any]) -> str:
    groups: Sequence[str] = rule["apiGroups"]
    resources: Sequence[str] = rule["resources"]
    names = [_resource(g, r) if g != "*" else f"{r} (any group)" for g in groups for r in resources]
    return ", ".join(f"`{n}`" for n in names)


def blast_radius(configuration: Mapping[str, Any]) -> str:
    """One row per rule of each entry, then the namespaces the entries exclude."""
    lines = [
        "| Entry | failurePolicy | timeoutSeconds | Operations | Resources |",
        "|---|---|---|---|---|",
    ]
    excluded: list[str] = []
    for hook in configuration["webhooks"]:
        for rule in hook["rules"]:
            ops = ", ".join(rule["operations"])
            scope = "" if rule["scope"] == "*" else f" ({rule['scope']} scope)"
            row = [
                hook["name"],
                hook["failurePolicy"],
                str(hook["timeoutSeconds"]),
                ops,
                _names(rule) + scope,
            ]
            lines.append("| " + " | ".join(row) + " |")
        for expr in hook["namespaceSelector"]["matchExpressions"]:
            said = _excluded(expr)
            if said not in excluded:
                excluded.append(said)
    conditioned = [
        f"`{h['name']}` ({h['failurePolicy']})" for h in configuration["webhooks"] if h.get("matchConditions")
    ]
    if conditioned:
        lines += [
            "",
            "Resources listed by both entries reach one: their `matchConditions` pick "
            + ", ".join(conditioned)
            + ".",
        ]
    lines += ["", "Never sent: " + "; ".join(excluded) + "."]
    return "\n".join(lines) + "\n"


def _excluded(expr: Mapping[str, Any]) -> str:
    values = ", ".join(f"`{v}`" for v in expr["values"])
    if expr["key"] == "kubernetes.io/metadata.name":
        return f"the namespaces {values}"
    return f"namespaces labelled `{expr['key']}` = {values}"
