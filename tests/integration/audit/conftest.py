"""Fixtures for the audit integration tests: a key on disk and a PostgreSQL schema per test.

PostgreSQL tests read the DSN from POLICYENGINE_TEST_PG and skip without it, or fail when
POLICYENGINE_REQUIRE_PG=1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit import keygen, make_entry
from audit.keys import KeyFiles
from tests.helpers import postgres_schema

ORIGIN = "example.com/integration"


@pytest.fixture(scope="session")
def keyfiles(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(ORIGIN, tmp_path_factory.mktemp("keys"))


def entry(i: int) -> dict[str, Any]:
    return make_entry(
        time=datetime(2026, 11, 27, tzinfo=UTC) + timedelta(seconds=i),
        source="admission",
        uid=f"uid-{i}",
        operation="CREATE",
        resource={"apiVersion": "v1", "kind": "Pod", "namespace": f"ns-{i % 3}", "name": f"p{i}"},
        verdict="denied" if i % 2 else "allowed",
        user="alice",
        results=[
            {"policy": "gpu-limits", "action": "deny", "outcome": "fail" if i % 2 else "pass", "message": ""}
        ],
    )


@pytest.fixture
def make() -> Callable[[int], dict[str, Any]]:
    return entry


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    with postgres_schema("audit_test_") as dsn:
        yield dsn
