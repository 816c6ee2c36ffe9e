"""The quick schema verdict (``policyengine.jsoncheck``) never calls valid what jsonschema refuses, nor
invalid what it accepts, on every shipped and example document and on mutations of them; it vouches for
the bundled packs and the example config, so a check with valid inputs never imports jsonschema."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyengine import jsoncheck, schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    "Policy": "policy.json",
    "PolicyException": "policy-exception.json",
    "GovernanceConfig": "governance-config.json",
    "PolicyVariables": "policy-variables.json",
    "ConstraintTemplate": "constraint-template.json",
    "ValidatingAdmissionPolicy": "validating-admission-policy.json",
    "ValidatingAdmissionPolicyBinding": "validating-admission-policy-binding.json",
    "PolicyTest": "policy-test.json",
}


def _documents() -> list[tuple[str, Any]]:
    found = []
    for folder in (ROOT / "policyengine" / "packs", ROOT / "examples"):
        for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
            try:
                docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            except yaml.YAMLError:
                continue
            found += [
                (SCHEMAS[d["kind"]], d) for d in docs if isinstance(d, dict) and d.get("kind") in SCHEMAS
            ]
    return found


DOCUMENTS = _documents()


def _agrees(data: Any, name: str) -> None:
    said = jsoncheck.verdict(data, name)
    errors = list(schema.validator(name).iter_errors(data))
    if said is True:
        assert not errors, (name, data, [e.message for e in errors])
    if said is False:
        assert errors, (name, data)


def test_the_shipped_and_example_documents_are_vouched_for() -> None:
    assert len(DOCUMENTS) > 20
    kinds = {name for name, _ in DOCUMENTS}
    assert {"policy.json", "governance-config.json"} <= kinds
    for name, data in DOCUMENTS:
        assert jsoncheck.verdict(data, name) is True, (name, data.get("metadata"))
        _agrees(data, name)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "Deny", "Warn", "Audit", "*", "a/b", "team-a", "nvidia.com/gpu", "a" * 300]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["name", "spec", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, len(DOCUMENTS) - 1), st.integers(0, 10**6), st.sampled_from(["set", "drop", "dup"]), JSON
)
def test_a_mutated_document_gets_jsonschemas_verdict(which: int, where: int, how: str, value: Any) -> None:
    name, original = DOCUMENTS[which]
    data = copy.deepcopy(original)
    paths = _paths(data)
    path = paths[where % len(paths)]
    if not path:
        data = value
    else:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if how == "drop":
            del parent[path[-1]]
        elif how == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = value
    _agrees(data, name)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ({"apiVersion": "x", "kind": "Policy", "metadata": {"name": "p"}, "spec": True}, "policy.json"),
        ([1, True], "policy.json"),
        ({"enum-as-bool": True}, "governance-config.json"),
    ],
)
def test_odd_documents_get_jsonschemas_verdict(data: Any, name: str) -> None:
    _agrees(data, name)


def test_a_check_with_valid_inputs_imports_no_jsonschema(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, namespace: team-a}\n"
        "spec: {template: {spec: {containers: [{name: c, image: 'r.example.com/x:1'}]}}}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\n"
        "from policyengine.cli import main\n"
        f"main(['check', {str(manifest)!r}, '--config', {str(ROOT / 'examples' / 'governance.yaml')!r},"
        f" '--format', 'json', '--output', {str(tmp_path / 'report.json')!r}])\n"
        "print(sorted(m for m in ('jsonschema', 'referencing') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert (tmp_path / "report.json").exists(), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
