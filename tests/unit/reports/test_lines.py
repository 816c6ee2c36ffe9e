"""Findings point at the field the validation names (fieldPath), else at the document's first line."""

from __future__ import annotations

import json

import pytest

from policyengine.gate import parse_field_path
from tests.helpers import write
from tests.unit.reports.conftest import Workspace, deployment


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']",
            ("spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"),
        ),
        ('metadata.annotations["a.b/c"]', ("metadata", "annotations", "a.b/c")),
        (".spec.replicas", ("spec", "replicas")),
        ("spec.x[12][3]", ("spec", "x", 12, 3)),
    ],
)
def test_field_paths_parse(text: str, path: tuple[str | int, ...]) -> None:
    assert parse_field_path(text) == path


def test_a_short_field_path_is_parsed_once_a_long_one_is_never_kept() -> None:
    """Every resource a policy judges names the same few paths: the parse is shared. A long text (maybe
    a manifest's own keys) is parsed each time and not held."""
    short = "spec.template.spec.containers[3].image"
    assert parse_field_path(short) is parse_field_path(short)
    long = "spec." + "k" * 300 + "[1]"
    first = parse_field_path(long)
    assert first == ("spec", "k" * 300, 1) and parse_field_path(long) is not first


def test_json_has_line_and_column_of_the_field(workspace: Workspace) -> None:
    code, out, _ = workspace.check("--format", "json")
    assert code == 1
    sources = {(r["policy"], r["resource"]["name"]): r["source"] for r in json.loads(out)["results"]}
    assert sources[("gpu-cap", "big")] == {"file": "manifests/deploy.yaml", "line": 33, "column": 15}
    assert sources[("owner-label", "big")] == {"file": "manifests/deploy.yaml", "line": 23, "column": 3}
    assert sources[("replica-watch", "legacy")] == {"file": "manifests/deploy.yaml", "line": 42, "column": 3}
    assert sources[("job-deadline", "nightly")] == {"file": "manifests/jobs.yaml", "line": 8}


def test_a_missing_field_points_at_its_nearest_ancestor(workspace: Workspace) -> None:
    # "labels" is absent: the finding sits on "metadata" of the second document, the nearest line that exists.
    text = deployment("first", 1) + "---\n" + deployment("second", 1).replace("  labels: {owner: ml}\n", "")
    write(workspace.root / "manifests" / "deploy.yaml", text)
    code, out, _ = workspace.check("--format", "json")
    [warn] = [r for r in json.loads(out)["results"] if r["policy"] == "owner-label"]
    assert warn["resource"]["name"] == "second" and warn["source"]["line"] == 20
    assert code == 1  # the Job's evaluation error still denies


def test_list_items_keep_their_own_lines(workspace: Workspace) -> None:
    items = [deployment("a", 1), deployment("b", 6)]
    body = "".join("  - " + item.replace("\n", "\n    ").rstrip() + "\n" for item in items)
    write(workspace.root / "manifests" / "deploy.yaml", "apiVersion: v1\nkind: List\nitems:\n" + body)
    code, out, _ = workspace.check("--format", "json")
    assert code == 1
    [gpu] = [r for r in json.loads(out)["results"] if r["policy"] == "gpu-cap"]
    assert gpu["resource"]["name"] == "b"
    assert gpu["source"] == {"file": "manifests/deploy.yaml", "line": 35, "column": 19}
