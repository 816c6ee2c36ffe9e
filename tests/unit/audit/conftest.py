"""Fixtures for the audit tests: a signing key, an entry factory, open logs on each store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, keygen, load_signer, load_verifier, make_entry
from audit.keys import KeyFiles
from audit.note import Ed25519Signer, Verifier

ORIGIN = "example.com/policyengine-audit"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def keyfiles(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(ORIGIN, tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def signer(keyfiles: KeyFiles) -> Ed25519Signer:
    return load_signer(keyfiles.key)


@pytest.fixture(scope="session")
def verifier(keyfiles: KeyFiles) -> Verifier:
    return load_verifier(keyfiles.vkey)


def entry(i: int, **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "time": T0 + timedelta(minutes=i),
        "source": "admission" if i % 4 else "ci",
        "uid": f"uid-{i}",
        "operation": "CREATE",
        "resource": {
            "apiVersion": "apps/v1",
            "kind": "Deployment" if i % 2 else "Pod",
            "namespace": f"team-{i % 3}",
            "name": f"w{i}",
        },
        "verdict": ("allowed", "denied", "warned")[i % 3],
        "user": f"user{i % 2}",
        "groups": ["system:authenticated"],
        "policy_set_digest": "sha256:" + "ab" * 32,
        "results": [
            {
                "policy": "require-gpu-limits",
                "action": "deny",
                "outcome": ("pass", "fail")[i % 2],
                "message": "m",
            },
            {"policy": f"pack-{i % 5}", "action": "warn", "outcome": "pass", "message": ""},
        ],
    }
    values.update(over)
    return make_entry(**values)


@pytest.fixture
def make() -> Callable[..., dict[str, Any]]:
    return entry


@pytest.fixture
def sqlite_log(tmp_path: Path, signer: Ed25519Signer) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path / "audit.db", signer=signer)
    yield log
    log.close()
