"""JSON Schema validation of documents against the schemas shipped in ``policyengine/schemas``."""

from __future__ import annotations

import json
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
