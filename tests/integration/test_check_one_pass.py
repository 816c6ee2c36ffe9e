"""`policyengine check` lists every input problem of every file in one run, sorted by file then line: a
broken file does not hide the problems of the next one, nor a broken document those of the documents
before it, nor a repeated key the other problems of its file; policy problems are listed alongside."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, write
from tests.integration.test_check_cli import POLICIES, deployment

BAD_LABEL = "{version: 1.0}"


def folder_of_problems(root: Path) -> list[tuple[str, int, str]]:
    """One file per kind of problem; the (file, line, code) each must be listed as, in order."""
    write(root / "a-syntax.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: [oops\n")
    write(root / "b-repeated.yaml", "apiVersion: v1\nkind: Pod\nkind: Pod\nmetadata: {name: b}\n")
    write(root / "c-not-object.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: c}\n---\n- a list\n")
    write(root / "d-label.yaml", deployment("d", 1, labels=BAD_LABEL))
    write(root / "e-no-api-version.yaml", "kind: Pod\nmetadata: {name: e}\n")
    # Two problems in one file: a label in the first document, a syntax error in the second.
    write(root / "f-label-then-syntax.yaml", deployment("f", 1, labels=BAD_LABEL) + "---\nkind: [oops\n")
    # A repeated key does not hide the label problem of the same file.
    write(root / "g-repeated-and-label.yaml", deployment("g", 1, labels=BAD_LABEL) + "kind: Deployment\n")
    return [
        (str(root / "a-syntax.yaml"), 6, "yaml_syntax"),
        (str(root / "b-repeated.yaml"), 3, "yaml_syntax"),
        (str(root / "c-not-object.yaml"), 5, "not_an_object"),
        (str(root / "d-label.yaml"), 6, "schema_invalid"),
        (str(root / "e-no-api-version.yaml"), 1, "not_an_object"),
        (str(root / "f-label-then-syntax.yaml"), 6, "schema_invalid"),
        (str(root / "f-label-then-syntax.yaml"), 18, "yaml_syntax"),
        (str(root / "g-repeated-and-label.yaml"), 6, "schema_invalid"),
        (str(root / "g-repeated-and-label.yaml"), 16, "yaml_syntax"),
    ]


def listed(err: str) -> list[tuple[str, int, str]]:
    out = []
    for line in err.splitlines():
        match = re.match(r"^(.+?):(\d+): ([a-z_]+): ", line)
        if match:
            out.append((match[1], int(match[2]), match[3]))
    return out


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write(tmp_path / "policies" / "p.yaml", POLICIES).parent


def test_every_problem_of_every_file_is_listed_in_one_run_sorted(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    expected = folder_of_problems(tmp_path / "repo")
    args = ["check", "--no-default-policies", "--policies", str(policies), str(tmp_path / "repo")]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert listed(err) == expected, err
    assert f"policyengine: {len(expected)} problems found; nothing was evaluated" in err

    code, report = run_json(args, capsys, monkeypatch)
    assert code == 2 and report["summary"]["problems"] == len(expected)
    assert [(p["file"], p["line"], p["code"]) for p in report["problems"]] == expected


def test_a_named_file_with_a_repeated_key_still_lists_its_other_problems(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    named = write(tmp_path / "named.yaml", deployment("g", 1, labels=BAD_LABEL) + "kind: Deployment\n")
    args = ["check", "--no-default-policies", "--policies", str(policies), str(named)]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    assert listed(err) == [(str(named), 6, "schema_invalid"), (str(named), 16, "yaml_syntax")], err


def test_policy_and_manifest_problems_are_listed_together_sorted_by_file(
    tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The broken policy sorts after the broken manifest: the list is by file, not by kind of input.
    manifest = write(tmp_path / "a" / "app.yaml", deployment("a", 1, labels=BAD_LABEL))
    policy = write(tmp_path / "z" / "p.yaml", "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: [\n")
    args = ["check", "--no-default-policies", "--policies", str(policy.parent), str(manifest.parent)]
    code, report = run_json(args, capsys, monkeypatch)
    assert code == 2
    assert [(p["file"], p["code"]) for p in report["problems"]] == [
        (str(manifest), "schema_invalid"),
        (str(policy), "yaml_syntax"),
    ]


def test_a_bound_passed_stays_an_error_listed_with_the_other_files_problems(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    many = write(root / "a-many.yaml", "---\n".join(deployment(f"m{i}", 1) for i in range(3)))
    label = write(root / "b-label.yaml", deployment("b", 1, labels=BAD_LABEL))
    args = ["check", "--no-default-policies", "--policies", str(policies), "--max-documents", "2", str(root)]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    # The policy file (three documents) is over the bound too, and listed first: it sorts first.
    assert listed(err)[1:] == [(str(many), 33, "read_error"), (str(label), 6, "schema_invalid")], err
    assert listed(err)[0][0].startswith(str(policies)) and listed(err)[0][2] == "read_error"
    assert "more than 2 documents in one file" in err
