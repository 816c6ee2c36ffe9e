"""`check --audit-log` records one signed entry per resource decided, which `audit verify` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli, write

POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: no-latest}
spec:
  validations:
    - expression: "!object.spec.containers.exists(c, c.image.endsWith(':latest'))"
      message: pin the image
"""


def pod(name: str, image: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ml}}\nspec:\n  containers: [{{name: c, image: '{image}'}}]\n"


def test_every_decision_is_recorded_and_verifiable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = write(tmp_path / "p" / "policy.yaml", POLICY).parent
    manifests = write(tmp_path / "m.yaml", pod("a", "nginx:latest") + "---\n" + pod("b", "nginx:1.27"))
    keys = tmp_path / "keys"
    assert (
        run_cli(["audit", "keygen", "--origin", "ci.example/audit", "--out", str(keys)], capsys, monkeypatch)[
            0
        ]
        == 0
    )
    log = str(tmp_path / "audit.db")
    args = ["check", "--no-default-policies", "--policies", str(policies), str(manifests)]
    code, _, err = run_cli(
        [*args, "--audit-log", log, "--audit-key", str(keys / "audit.key")], capsys, monkeypatch
    )
    assert code == 1, err

    code, out, _ = run_cli(["audit", "query", "--audit-log", log, "--format", "json"], capsys, monkeypatch)
    entries = json.loads(out)
    assert [(e["resource"]["name"], e["verdict"], e["source"]) for e in entries] == [
        ("a", "denied", "ci"),
        ("b", "allowed", "ci"),
    ]
    assert entries[0]["results"] == [
        {"policy": "no-latest", "action": "deny", "outcome": "fail", "message": "pin the image"}
    ]
    code, out, _ = run_cli(
        ["audit", "verify", "--audit-log", log, "--public-key", str(keys / "audit.pub")], capsys, monkeypatch
    )
    assert code == 0 and "intact" in out


def test_audit_log_without_a_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = write(tmp_path / "p" / "policy.yaml", POLICY).parent
    manifests = write(tmp_path / "m.yaml", pod("a", "nginx:1"))
    code, _, err = run_cli(
        [
            "check",
            "--no-default-policies",
            "--policies",
            str(policies),
            str(manifests),
            "--audit-log",
            "x.db",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--audit-key" in err
