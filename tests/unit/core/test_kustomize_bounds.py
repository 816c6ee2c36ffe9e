"""The render of a kustomization is bounded by the process, not by kubectl's good behaviour: a kubectl
that never finishes is killed at the timeout, one that writes without end is cut at the size limit.
Both are real processes on PATH that misbehave (a hung or runaway kubectl)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from policyengine.errors import LoadError
from policyengine.kustomize import render, trace
from policyengine.loader import InputLimits
from tests.helpers import write


def fake_kubectl(bin_dir: Path, body: str) -> None:
    script = write(bin_dir / "kubectl", f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def kustomization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    folder = tmp_path / "k"
    write(folder / "kustomization.yaml", "resources: []\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    return folder


def test_a_kubectl_that_never_finishes_is_killed_at_the_timeout(kustomization: Path) -> None:
    fake_kubectl(kustomization.parent / "bin", "exec sleep 600")
    with pytest.raises(LoadError) as caught:
        render(trace(str(kustomization)), timeout=0.5)
    (problem,) = caught.value.problems
    assert problem.file == str(kustomization / "kustomization.yaml")
    assert problem.message == f"kubectl kustomize {kustomization} did not finish within 0.5 s"


def test_a_kubectl_that_writes_without_end_is_cut_at_the_size_limit(kustomization: Path) -> None:
    fake_kubectl(kustomization.parent / "bin", "exec yes 'a: b'")
    with pytest.raises(LoadError) as caught:
        render(trace(str(kustomization)), InputLimits(max_bytes=4096), timeout=60)
    (problem,) = caught.value.problems
    assert (
        problem.message == f"kubectl kustomize {kustomization} wrote more than --max-input-size (4096 bytes)"
    )


def test_kubectls_message_is_kept_short_and_on_one_line(kustomization: Path) -> None:
    body = "yes x | head -c 100000 >&2; printf 'bell\\007\\nEND\\n' >&2; exit 3"
    fake_kubectl(kustomization.parent / "bin", body)
    with pytest.raises(LoadError) as caught:
        render(trace(str(kustomization)))
    (problem,) = caught.value.problems
    assert "failed (exit 3): x; x; " in problem.message and problem.message.endswith("x; bell; END")
    assert len(problem.message) < 2200
