"""JSON Schema validation of documents against the schemas shipped in ``policyengine/schemas``, and the
defaults those schemas declare. A document ``policyengine.jsoncheck`` finds valid is not given to
``jsonschema`` (imported only for one it cannot vouch for), which locates and words every problem."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from policyengine import errors, jsoncheck
from policyengine.errors import Problem
from policyengine.loader import Document

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from referencing import Registry

_BASE = "https://policyengine.io/schemas/"
# A hostile document (10^5 bad keys) must not produce 10^5 problems: the first ones locate the fault.
MAX_PROBLEMS = 50


def _read(name: str) -> Any:
    return json.loads(resources.files("policyengine.schemas").joinpath(name).read_text("utf-8"))


@cache
def _registry() -> Registry:
    from referencing import Registry, Resource

    names = [p.name for p in resources.files("policyengine.schemas").iterdir() if p.name.endswith(".json")]
    return Registry().with_resources((_BASE + n, Resource.from_contents(_read(n))) for n in names)


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator for schema file ``name`` (e.g. "policy.json"), built once."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_read(name), registry=_registry())


def validate(doc: Document, schema: str) -> list[Problem]:
    """Every schema violation of ``doc``, each located at the offending field's line."""
    if jsoncheck.verdict(doc.data, schema) is True:
        return []
    found = list(itertools.islice(validator(schema).iter_errors(doc.data), MAX_PROBLEMS + 1))
    problems = []
    for err in sorted(found[:MAX_PROBLEMS], key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        message = _message(err)
        if len(message) > 300:
            message = message[:299] + "…"
        problems.append(doc.problem(errors.SCHEMA_INVALID, message, path))
    if len(found) > MAX_PROBLEMS:
        problems.append(doc.problem(errors.SCHEMA_INVALID, f"more than {MAX_PROBLEMS} schema problems", []))
    return problems


def _message(err: Any) -> str:
    """jsonschema's message, except where it would print the whole (possibly huge) offending value."""
    if err.validator in ("maxProperties", "maxItems") and isinstance(err.instance, Mapping | list):
        return f"has {len(err.instance)} entries, more than the {err.validator_value} allowed"
    if err.validator == "maxLength" and isinstance(err.instance, str):
        return f"is {len(err.instance)} characters long, more than the {err.validator_value} allowed"
    return str(err.message)


def with_defaults(value: Mapping[str, Any], schema: str, at: Sequence[str] = ()) -> dict[str, Any]:
    """``value`` (valid at ``at`` in schema file ``schema``) with every absent key whose schema declares
    a ``default`` filled in, recursively through ``properties``. Keys the schema does not name are kept."""
    node: Any = _read(schema)
    for key in at:
        node = node["properties"][key]
    filled = _fill(value, node)
    return dict(filled) if isinstance(filled, Mapping) else {}


def _fill(value: Any, node: Mapping[str, Any]) -> Any:
    properties = node.get("properties")
    if not isinstance(value, Mapping) or not isinstance(properties, Mapping):
        return value
    out = dict(value)
    for key, sub in properties.items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = _fill(out[key], sub)
    return out
