"""The organisation facts a policy needs before it can judge anything, and the policies whose facts the
merged GovernanceConfig lacks.

A policy names them in its annotation ``policyengine.io/requires-config``: alternatives separated by
``|``, each a GovernanceConfig key that must be set and not empty (``spec.models.approvedSources``) or a
key and the value it must have (``spec.gpu.teamsFrom=kueue``). A policy none of whose alternatives the
merged config meets is *not configured*: it is not evaluated, never denies, and is reported once per run
(``check``) or refused at start (``serve``), since a rule judging against facts nobody gave would deny
on made-up values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from policyengine import errors
from policyengine.errors import Problem
from policyengine.model import Outcome, Policy, Result
from policyengine.results import make_result, primary_action

__all__ = [
    "ANNOTATION",
    "MAX_ALTERNATIVES",
    "MAX_VALUE",
    "NOT_CONFIGURED",
    "Unconfigured",
    "describe",
    "needs_text",
    "not_configured_result",
    "parse",
    "problems",
    "unconfigured",
]

ANNOTATION = "policyengine.io/requires-config"
# The word reports show for a policy that is not configured (its results' code is errors.NOT_CONFIGURED).
NOT_CONFIGURED = "not-configured"
# An annotation is written by hand: a few keys. The bounds keep a hostile one from costing anything.
MAX_VALUE = 512
MAX_ALTERNATIVES = 8
_KEY = re.compile(r"spec(?:\.[A-Za-z][A-Za-z0-9]{0,62}){1,4}")
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class Unconfigured:
    """A policy that is not evaluated, and the config keys (alternatives) any one of which it needs."""

    policy: str
    needs: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "needs": list(self.needs)}


def needs_text(needs: Sequence[str]) -> str:
    """ "spec.gpu.teams or spec.gpu.teamsFrom=kueue" """
    return " or ".join(needs)


@cache
def _schema_spec() -> Mapping[str, Any]:
    # The shipped schema is the list of keys a config can set (read here, not through policyengine.schema,
    # which sits beside the document converters that call this module).
    text = resources.files("policyengine.schemas").joinpath("governance-config.json").read_text("utf-8")
    spec: Mapping[str, Any] = json.loads(text)["properties"]["spec"]
    return spec


def _known(key: str) -> bool:
    node: Any = _schema_spec()
    for part in key.split(".")[1:]:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or part not in properties:
            return False
        node = properties[part]
    return True


def parse(value: str) -> tuple[tuple[str, ...], str | None]:
    """The alternatives an annotation value names, or () and why it cannot be read. Bounded: a value
    past MAX_VALUE characters or MAX_ALTERNATIVES alternatives is refused unread."""
    if len(value) > MAX_VALUE:
        return (), f"is {len(value)} characters long, more than the {MAX_VALUE} allowed"
    parts = [p.strip() for p in value.split("|")]
    if len(parts) > MAX_ALTERNATIVES:
        return (), f"names {len(parts)} alternatives, more than the {MAX_ALTERNATIVES} allowed"
    for part in parts:
        key, _, wanted = part.partition("=")
        if not _KEY.fullmatch(key) or ("=" in part and not _VALUE.fullmatch(wanted)):
            shown = part if len(part) <= 80 else part[:79] + "…"
            return (), (
                f"{shown!r} is not a GovernanceConfig key such as spec.models.approvedSources "
                "(or key=value, e.g. spec.gpu.teamsFrom=kueue); separate alternatives with |"
            )
        if not _known(key):
            return (), f"{key} is not a key of GovernanceConfig (policyengine/schemas/governance-config.json)"
    return tuple(dict.fromkeys(parts)), None


def _value_at(config: Mapping[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split(".")[1:]:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _met(config: Mapping[str, Any], alternative: str) -> bool:
    key, eq, wanted = alternative.partition("=")
    value = _value_at(config, key)
    if eq:
        return isinstance(value, str | bool | int) and str(value).lower() == wanted.lower()
    # Set, and not the schema's empty default: an empty list or map gives the rule nothing to judge by.
    return value is not None and value != "" and value != [] and value != {}


def unconfigured(policies: Iterable[Policy], config: Mapping[str, Any]) -> tuple[Unconfigured, ...]:
    """The policies (in load order) none of whose required alternatives the merged config ``spec`` meets."""
    return tuple(
        Unconfigured(p.name, p.requires_config)
        for p in policies
        if p.requires_config and not any(_met(config, a) for a in p.requires_config)
    )


def describe(missing: Sequence[Unconfigured]) -> str:
    """ "gpu-team-quota (needs spec.gpu.teams or spec.gpu.teamsFrom=kueue), model-approved-source (...)" """
    return ", ".join(f"{m.policy} (needs {needs_text(m.needs)})" for m in missing)


def not_configured_result(policy: Policy, needs: Sequence[str]) -> Result:
    """The skip result of a policy that is not evaluated for want of its facts; it never denies, and
    the audit log records it like any other result."""
    message = f"{NOT_CONFIGURED}: not evaluated, it needs GovernanceConfig {needs_text(needs)}"
    action = primary_action(policy.actions)
    return make_result(policy, action, Outcome.SKIP, message, code=errors.NOT_CONFIGURED)


def problems(policy_set_policies: Iterable[Policy], missing: Iterable[Unconfigured]) -> list[Problem]:
    """Each unconfigured policy as a load problem at its document (check --require-config: exit 2)."""
    by_name = {p.name: p for p in policy_set_policies}
    out = []
    for m in missing:
        source = by_name[m.policy].source
        message = (
            f"policy {m.policy} needs GovernanceConfig {needs_text(m.needs)}, which no config sets; "
            "give it with --config, or drop --require-config to report it as not-configured"
        )
        out.append(Problem(source.file, source.line, errors.NOT_CONFIGURED, message))
    return out
