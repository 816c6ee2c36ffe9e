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
