"""What ``generate vap`` writes is valid ``admissionregistration.k8s.io/v1``: the strict JSON Schema of each
targeted Kubernetes release (tests/data/admissionregistration-v1, with its origin), and the rules the API
server's validation adds on top of the schema (names, match condition names, variable names, actions)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from policyengine.policyset import load_policy_set
from policyengine.vapgen import generate
from policyengine.vapgen.celenv import NEWEST, OLDEST
from tests.unit.vapgen.test_parity import _corpus_policy_paths

SCHEMAS = Path(__file__).resolve().parents[2] / "data/admissionregistration-v1"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED = re.compile(r"([a-z0-9.-]+/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
CEL_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


@functools.cache
def validator(minor: int, kind: str) -> Draft202012Validator:
    bundle = json.loads((SCHEMAS / f"v1.{minor}.json").read_text())
    return Draft202012Validator({**bundle[kind], "$defs": bundle["$defs"]})


def api_server_problems(doc: dict[str, Any], static: bool) -> list[str]:
    """What kube-apiserver's validation refuses beyond the schema, for the fields generated here."""
    name = doc["metadata"]["name"]
    out = [] if DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253 else [f"name {name!r}"]
    if static and not name.endswith(".static.k8s.io"):
        out.append(f"static name {name!r}")
    spec = doc["spec"]
    if doc["kind"] == "ValidatingAdmissionPolicy":
        out += [
            f"condition {c['name']!r}"
            for c in spec.get("matchConditions", [])
            if not QUALIFIED.fullmatch(c["name"])
        ]
        out += [
            f"variable {v['name']!r}" for v in spec.get("variables", []) if not CEL_IDENT.fullmatch(v["name"])
        ]
        out += [f"message {v['message']!r}" for v in spec["validations"] if "\n" in v.get("message", "")]
        if static and "paramKind" in spec:
            out.append("a static policy with a paramKind")
    else:
        if {"Deny", "Warn"} <= set(spec["validationActions"]):
            out.append("Deny and Warn together")
        if static and "paramRef" in spec:
            out.append("a static binding with a paramRef")
    return out


@pytest.mark.shared
@pytest.mark.parametrize("minor", [OLDEST, NEWEST])
@pytest.mark.parametrize("static", [False, True], ids=["api", "static"])
def test_the_generated_documents_validate_against_the_release_schema(
    shared: Path, minor: int, static: bool
) -> None:
    if static and minor < 36:
        minor = 36  # manifest-based admission control starts at 1.36
    generation = generate(load_policy_set(_corpus_policy_paths(shared)), minor=minor, static=static)
    docs = [d for d in generation.documents if d["apiVersion"] == "admissionregistration.k8s.io/v1"]
    assert len(docs) == 2 * len(generation.generated) >= 30
    for doc in docs:
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(minor, doc["kind"]).iter_errors(doc)
        ]
        assert not errors, (doc["metadata"]["name"], errors[:3])
        assert not api_server_problems(doc, static), doc["metadata"]["name"]


def test_the_schema_catches_what_it_should() -> None:
    """The vendored schemas are strict: an unknown field or a missing required one is refused."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "x"},
        "spec": {"validations": [{"expression": "true", "fieldPathExpression": "'a'"}]},
    }
    errors = list(validator(NEWEST, "ValidatingAdmissionPolicy").iter_errors(policy))
    assert any("fieldPathExpression" in e.message for e in errors)
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "x"},
        "spec": {"validationActions": "Deny"},
    }
    assert list(validator(OLDEST, "ValidatingAdmissionPolicyBinding").iter_errors(binding))
