"""A SQLite log keeps each batch's checkpoint in the batch's own transaction: one durable write per
batch, and an entry is answered only once the checkpoint that covers it is kept too."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit import AuditLog, load_verifier
from audit.keys import KeyFiles
from audit.note import Ed25519Signer


def test_each_batch_is_one_transaction_with_its_checkpoint(
    tmp_path: Path, signer: Ed25519Signer, keyfiles: KeyFiles, make: Callable[..., dict[str, Any]]
) -> None:
    db = tmp_path / "audit.db"
    with AuditLog.open(db, signer=signer) as log:
        statements: list[str] = []
        connection = log.store._db  # type: ignore[attr-defined]
        assert isinstance(connection, sqlite3.Connection)
        connection.set_trace_callback(statements.append)
        with AuditLog.open(db) as reader:
            for i in range(20):
                index = log.append(make(i))
                # answered: its entry and the checkpoint of the head that holds it are both kept
                assert reader.store.checkpoint_at(index + 1) is not None, f"entry {index} answered unsigned"
        connection.set_trace_callback(None)
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    assert len(commits) == 20  # one per batch: entries, head and checkpoint written together
    with AuditLog.open(db) as log:
        assert [size for size, _ in log.store.checkpoints()] == list(range(21))
        assert log.verify(load_verifier(keyfiles.vkey)).ok


def test_a_head_that_does_not_extend_the_latest_checkpoint_is_not_sealed(
    tmp_path: Path, signer: Ed25519Signer, make: Callable[..., dict[str, Any]]
) -> None:
    """A checkpoint below the head the batch extends (another writer's batch in between) is left to
    the consistency check after the batch, which signs the new head once it is shown to extend."""
    db = tmp_path / "audit.db"
    with AuditLog.open(db, signer=signer) as log:
        log.append(make(0))
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("DELETE FROM checkpoints WHERE size = 1")  # as if another writer had not signed yet
    raw.close()
    with AuditLog.open(db, signer=signer) as log:  # signs the pending head on open
        assert log.store.checkpoint_at(1) is not None
        raw = sqlite3.connect(db)
        with raw:
            raw.execute("DELETE FROM checkpoints WHERE size = 1")
        raw.close()
        assert log.append(make(1)) == 1
    with AuditLog.open(db) as log:
        sizes = [size for size, _ in log.store.checkpoints()]
    assert sizes == [0, 2]  # head 2 extends checkpoint 0 and is signed by the proof path
