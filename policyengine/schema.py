"""JSON Schema validation of documents against the schemas shipped in ``policyengine/schemas``, and the
defaults those schemas declare."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from policyengine import errors
from policyengine.errors import Problem
from policyengine.loader import Document

_BASE = "https://policyengine.io/schemas/"


def _read(name: str) -> Any:
    return json.loads(resources.files("policyengine.schemas").joinpath(name).read_text("utf-8"))


@cache
def _registry() -> Registry:
    names = [p.name for p in resources.files("policyengine.schemas").iterdir() if p.name.endswith(".json")]
    return Registry().with_resources((_BASE + n, Resource.from_contents(_read(n))) for n in names)


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator for schema file ``name`` (e.g. "policy.json"), built once."""
    return Draft202012Validator(_read(name), registry=_registry())


def validate(doc: Document, schema: str) -> list[Problem]:
    """Every schema violation of ``doc``, each located at the offending field's line."""
    problems = []
    for err in sorted(validator(schema).iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        message = err.message
        if len(message) > 300:
            message = message[:299] + "…"
        problems.append(doc.problem(errors.SCHEMA_INVALID, message, path))
    return problems


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
