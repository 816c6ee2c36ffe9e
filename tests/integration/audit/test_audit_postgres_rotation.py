"""Key rotation on one PostgreSQL log written by three replicas: each follows the hand-over that an
operator records, and the log verifies from its first key with every later checkpoint by the new key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit import AuditLog, keygen, load_signer, load_verifier
from audit.keychain import handover_meta, parse_handover
from audit.note import split_note
from tests.integration.audit.conftest import ORIGIN


def test_three_replicas_follow_a_handover(
    pg_dsn: str, tmp_path: Path, make: Callable[[int], dict[str, Any]]
) -> None:
    old, new = keygen(ORIGIN, tmp_path / "old"), keygen(ORIGIN, tmp_path / "new")
    replicas = [
        AuditLog.open(pg_dsn, signer=load_signer(old.key), next_signers=[load_signer(new.key)], max_batch=1)
        for _ in range(3)
    ]
    try:
        for i in range(6):
            replicas[i % 3].append(make(i))
        with AuditLog.open(pg_dsn, signer=load_signer(old.key)) as operator:
            operator.rotate_key(load_signer(new.key))
        for i in range(6, 12):
            replicas[i % 3].append(make(i))
    finally:
        for replica in replicas:
            replica.close()
    new_id = load_verifier(new.vkey).key_id
    with AuditLog.open(pg_dsn) as log:
        handover = log.store.meta(handover_meta(1)) or ""
        size = parse_handover(handover)[0].size
        later = [note for filed, note in log.store.checkpoints() if filed > size]
        # A replica signs after answering, so one may sign a head another replica has already grown.
        assert size == 6 and later and max(filed for filed, _ in log.store.checkpoints()) == 12
        assert all([kid for _, kid, _ in split_note(note)[1]] == [new_id] for note in later)
        report = log.verify(load_verifier(old.vkey))
    assert report.ok and report.entries == 12
