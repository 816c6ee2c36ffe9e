"""Shared fixtures: where the contract's external test data lives (``../shared`` beside the repository).

Tests that read it take the ``shared`` fixture. Without the folder they skip with the reason; with
POLICYENGINE_REQUIRE_SHARED=1 (set by .ci/run) its absence is a failure instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POLICYENGINE_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "SPEC.md").is_file():
        reason = f"contract data not found at {SHARED} (set POLICYENGINE_SHARED to its folder)"
        if os.environ.get("POLICYENGINE_REQUIRE_SHARED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
