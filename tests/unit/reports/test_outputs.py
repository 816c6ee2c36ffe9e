"""Several reports in one run: each --output applies to the --format just before it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import run_cli
from tests.unit.reports.conftest import Workspace


def test_pairs_go_to_their_files_and_one_format_to_stdout(workspace: Workspace) -> None:
    code, out, _ = workspace.check(
        "--format",
        "sarif",
        "--output",
        "r.sarif",
        "--format",
        "text",
        "--format",
        "junit",
        "--output",
        "r.xml",
    )
    assert code == 1
    assert out.splitlines()[0] == "manifests/deploy.yaml" and out.splitlines()[-1].startswith(
        "FAIL: 5 resources"
    )
    assert json.loads((workspace.root / "r.sarif").read_text())["version"] == "2.1.0"
    assert ET.parse(workspace.root / "r.xml").getroot().get("tests") == "10"


def test_an_output_without_format_is_text(workspace: Workspace) -> None:
    code, out, _ = workspace.check("--output", "report.txt")
    assert code == 1 and out == ""
    assert "DENY gpu-cap" in (workspace.root / "report.txt").read_text()
    assert "\033[" not in (workspace.root / "report.txt").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "json", "--format", "text"], "2 reports (json, text) would go to stdout"),
        (["--output", "a.json", "--format", "json"], "--output a.json comes before any --format"),
        (["--format", "json", "--output", "a", "--output", "b"], "--format json has two --output files"),
        (["--format", "json", "--output", "a", "--format", "sarif", "--output", "a"], "--output a is given"),
    ],
)
def test_ambiguous_pairings_are_usage_errors(workspace: Workspace, args: list[str], message: str) -> None:
    code, out, err = workspace.check(*args)
    assert code == 2 and out == ""
    assert message in err
    assert not (workspace.root / "a").exists()


def test_dash_is_stdout(workspace: Workspace) -> None:
    code, out, _ = workspace.check(
        "--format", "github", "--output", "-", "--format", "json", "--output", "r.json"
    )
    assert code == 1 and out.startswith("::error ")
    assert json.loads((workspace.root / "r.json").read_text())["summary"]["failed"] == 1


def test_help_states_the_pairing_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["check", "--help"], capsys, monkeypatch)
    text = " ".join(out.split())
    assert code == 0
    assert "each --output applies to the --format just before it" in text
    assert "{text,json,sarif,junit,github}" in text
