"""``policyengine --version`` names the installed distribution's version and exits 0."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.helpers import run_cli


def test_version_prints_the_package_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(["--version"], capsys, monkeypatch)
    assert code == 0, err
    assert out.strip() == f"policyengine {version('policyengine')}"


def test_the_installed_command_prints_its_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "policyengine", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"policyengine {version('policyengine')}"


def test_only_version_reads_the_distribution_metadata(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking the version up reads every installed distribution's metadata: a run of any other verb
    (``check`` in CI, on every push) must not pay for it."""
    import importlib.metadata

    asked: list[str] = []
    real = importlib.metadata.version

    def noting(name: str) -> str:
        asked.append(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", noting)
    code, _, err = run_cli(["check", "--help"], capsys, monkeypatch)
    assert code == 0, err
    assert asked == []
    code, out, err = run_cli(["--version"], capsys, monkeypatch)
    assert code == 0 and asked == ["policyengine"] and out.startswith("policyengine "), err
