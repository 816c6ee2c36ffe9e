"""Choosing the CEL backend: ``fast`` by default, ``--cel-backend`` on ``check``, and
POLICYENGINE_CEL_BACKEND read by the CLI (never by the core)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.cli import main
from policyengine.cli.check import cel_compiler
from policyengine.expressions import Compiler

POLICY = """apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: replica-cap}
spec:
  match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}]}
  validations:
    - expression: "object.spec.replicas <= 5 && object.metadata.name.startsWith('ok')"
      message: too many replicas
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: ok-app, namespace: default}
spec: {replicas: %d}
"""


def test_the_fast_backend_is_the_default() -> None:
    assert get_backend().name == "fast"
    assert Compiler().backend.name == "fast"


@pytest.mark.parametrize(("env", "flag", "chosen"), [
    (None, None, "fast"), ("reference", None, "reference"), ("reference", "fast", "fast"),
    (None, "reference", "reference"),
])  # fmt: skip
def test_flag_beats_environment_beats_default(
    monkeypatch: pytest.MonkeyPatch, env: str | None, flag: str | None, chosen: str
) -> None:
    if env is None:
        monkeypatch.delenv("POLICYENGINE_CEL_BACKEND", raising=False)
    else:
        monkeypatch.setenv("POLICYENGINE_CEL_BACKEND", env)
    compiler = cel_compiler(flag)
    assert compiler is not None
    assert compiler.backend.name == chosen


def _check(tmp_path: Path, replicas: int, *extra: str) -> int:
    (tmp_path / "p.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "d.yaml").write_text(DEPLOYMENT % replicas, encoding="utf-8")
    args = [
        "check",
        "--no-default-policies",
        "--policies",
        str(tmp_path / "p.yaml"),
        str(tmp_path / "d.yaml"),
    ]
    return main([*args, *extra])


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_check_gives_the_same_verdict_on_either_backend(tmp_path: Path, capsys: Any, backend: str) -> None:
    assert _check(tmp_path, 3, "--cel-backend", backend) == 0
    assert _check(tmp_path, 9, "--cel-backend", backend) == 1
    assert "too many replicas" in capsys.readouterr().out


def test_an_unknown_backend_in_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("POLICYENGINE_CEL_BACKEND", "turbo")
    assert _check(tmp_path, 3) == 2
    assert "POLICYENGINE_CEL_BACKEND" in capsys.readouterr().err
