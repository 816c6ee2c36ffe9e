"""Conformance: every gator suite of the gatekeeper-library CEL corpus passes, run as users run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.cli import main


@pytest.mark.shared
def test_gatekeeper_library_suites_pass(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(shared / "corpus/gatekeeper-library")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "131 passed, 0 failed", "\n".join(lines[:10])
    assert code == 0
