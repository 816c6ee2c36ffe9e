"""AuditLog over the fake and SQLite: appends, checkpoints, recovery, query, proofs."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditLog, Query, verify_proof
from audit.checkpoint import Checkpoint, open_checkpoint, peek_checkpoint, sign_checkpoint
from audit.errors import InconsistentCheckpoint, KeyFileError, ReadOnlyLog, StoreCorrupt
from audit.merkle import verify_consistency
from audit.note import Ed25519Signer, Verifier
from audit.stores import Store
from audit.stores.memory import MemoryStore

Make = Callable[..., dict[str, Any]]


@pytest.fixture(params=["memory", "sqlite"])
def log(request: pytest.FixtureRequest, tmp_path: Path, signer: Ed25519Signer) -> Iterator[AuditLog]:
    target: Store | Path = MemoryStore() if request.param == "memory" else tmp_path / "a.db"
    opened = AuditLog.open(target, signer=signer)
    yield opened
    opened.close()


def test_append_returns_gap_free_indexes_and_signs_each_batch(
    log: AuditLog, make: Make, verifier: Verifier
) -> None:
    assert [log.append(make(i)) for i in range(5)] == [0, 1, 2, 3, 4]
    futures = [log.submit(make(i)) for i in range(5, 300)]
    assert sorted(f.result() for f in futures) == list(range(5, 300))
    log.sign_pending()
    latest = open_checkpoint(log.checkpoint() or "", verifier)
    assert latest.size == 300 and latest.root == log.store.head().root
    sizes = [size for size, _ in log.store.checkpoints()]
    assert sizes[:6] == [0, 1, 2, 3, 4, 5]  # one signature per batch, the empty tree first
    assert log.verify(verifier).ok


def test_concurrent_threads_get_distinct_indexes(log: AuditLog, make: Make) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def work(base: int) -> None:
        for i in range(40):
            index = log.append(make(base + i))
            with lock:
                got.append(index)

    threads = [threading.Thread(target=work, args=(n * 100,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(200))


def test_stored_bytes_are_the_hashed_canonical_bytes(log: AuditLog, make: Make) -> None:
    from audit import canonical
    from audit.merkle import leaf_hash

    entry = make(7)
    index = log.append(entry)
    stored = log.store.entries(index, index + 1)[0]
    assert stored.data == canonical(entry) and stored.leaf_hash == leaf_hash(stored.data)


def test_query_filters_and_pages(log: AuditLog, make: Make) -> None:
    for i in range(30):
        log.append(make(i))
    assert [e.index for e in log.query(Query(verdict="denied"))] == list(range(1, 30, 3))
    assert all(e.entry["resource"]["namespace"] == "team-2" for e in log.query(Query(namespace="team-2")))
    assert len(log.query(Query(policy="pack-3"))) == 6
    assert len(log.query(Query(policy="pack"))) == 0  # whole names only
    assert [e.index for e in log.query(Query(user="user1", kind="Deployment"))] == list(range(1, 30, 2))
    assert [e.index for e in log.query(Query(source="ci"))] == [0, 4, 8, 12, 16, 20, 24, 28]
    window = log.query(Query(since="2026-11-27T12:05:00.000000Z", until="2026-11-27T12:08:00.000000Z"))
    assert [e.index for e in window] == [5, 6, 7]
    first = log.query(Query(limit=10))
    second = log.query(Query(limit=10, after=first[-1].index))
    assert [e.index for e in first + second] == list(range(20))


def test_prove_gives_a_proof_that_checks_offline(log: AuditLog, make: Make, verifier: Verifier) -> None:
    for i in range(13):
        log.append(make(i))
    log.sign_pending()
    for index in (0, 6, 12):
        checkpoint, data = verify_proof(log.prove(index), verifier)
        assert checkpoint.size == 13 and data == log.store.entries(index, index + 1)[0].data
    old = peek_checkpoint(log.store.checkpoint_at(5) or "")
    new = peek_checkpoint(log.checkpoint() or "")
    verify_consistency(5, 13, old.root, new.root, log.consistency(5, 13))


def test_a_log_without_a_key_is_read_only(tmp_path: Path, signer: Ed25519Signer, make: Make) -> None:
    AuditLog.open(tmp_path / "a.db", signer=signer).close()
    with AuditLog.open(tmp_path / "a.db") as log, pytest.raises(ReadOnlyLog):
        log.append(make(0))


def test_opening_with_another_key_or_origin_is_refused(tmp_path: Path, signer: Ed25519Signer) -> None:
    AuditLog.open(tmp_path / "a.db", signer=signer).close()
    other = Ed25519Signer(signer.name, Ed25519PrivateKey.generate())
    with pytest.raises(KeyFileError) as caught:
        AuditLog.open(tmp_path / "a.db", signer=other)
    assert caught.value.code == "key_mismatch"
    with pytest.raises(StoreCorrupt) as corrupt:
        AuditLog.open(
            tmp_path / "a.db", signer=Ed25519Signer("other.example/log", Ed25519PrivateKey.generate())
        )
    assert corrupt.value.code == "origin_mismatch"


def test_open_signs_committed_but_unsigned_entries(tmp_path: Path, signer: Ed25519Signer, make: Make) -> None:
    path = tmp_path / "a.db"
    with AuditLog.open(path, signer=signer) as log:
        log.append(make(0))
    db = sqlite3.connect(path)
    db.execute("DELETE FROM checkpoints WHERE size = 1")  # as if we crashed between commit and signing
    db.commit()
    db.close()
    with AuditLog.open(path, signer=signer) as log:
        assert peek_checkpoint(log.checkpoint() or "").size == 1


def test_open_refuses_a_store_whose_root_was_changed(
    tmp_path: Path, signer: Ed25519Signer, make: Make
) -> None:
    path = tmp_path / "a.db"
    with AuditLog.open(path, signer=signer) as log:
        for i in range(3):
            log.append(make(i))
    db = sqlite3.connect(path)
    db.execute("UPDATE entries SET leaf_hash = ? WHERE idx = 1", (b"\x00" * 32,))
    db.commit()
    db.close()
    with pytest.raises(StoreCorrupt) as caught:
        AuditLog.open(path, signer=signer)
    assert caught.value.code == "root_mismatch"


def test_never_signs_a_second_root_for_a_size(signer: Ed25519Signer, make: Make) -> None:
    store = MemoryStore()
    with AuditLog.open(store, signer=signer) as log:
        log.append(make(0))
    forged = sign_checkpoint(Checkpoint(signer.name, 2, b"\x07" * 32), signer)
    store.add_checkpoint(2, forged)
    store.append(list(_records(make, 1)))  # the head reaches size 2 with a different root
    with pytest.raises(InconsistentCheckpoint):
        AuditLog.open(store, signer=signer)
    assert store.checkpoint_at(2) == forged


def test_refuses_to_sign_a_head_that_forks_from_the_last_checkpoint(
    signer: Ed25519Signer, make: Make
) -> None:
    store = MemoryStore()
    with AuditLog.open(store, signer=signer) as log:
        log.append(make(0))
    store._checkpoints[1] = sign_checkpoint(Checkpoint(signer.name, 1, b"\x07" * 32), signer)
    store.append(list(_records(make, 1)))
    with pytest.raises(InconsistentCheckpoint):
        AuditLog.open(store, signer=signer)
    assert store.checkpoint_at(2) is None


def _records(make: Make, count: int) -> Iterator[Any]:
    from audit import canonical
    from audit.entry import index_fields
    from audit.merkle import leaf_hash
    from audit.stores import Record

    for i in range(count):
        entry = make(100 + i)
        data = canonical(entry)
        yield Record(data, leaf_hash(data), index_fields(entry))


def test_proofs_come_from_stored_heads_without_reading_every_leaf(
    signer: Ed25519Signer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import canonical
    from audit.entry import index_fields
    from audit.merkle import consistency_proof, inclusion_proof, leaf_hash, root_of
    from audit.stores import Record

    store = MemoryStore()
    template = make(0)
    total, batch = 3000, 1
    while store.state()[1] < total:  # batches of 1, 2, ..., 40, 1, 2, ...
        records = []
        for i in range(store.state()[1], min(total, store.state()[1] + batch)):
            data = canonical(dict(template, uid=f"u{i}"))
            records.append(Record(data, leaf_hash(data), index_fields(template)))
        store.append(records)
        batch = batch % 40 + 1
    leaves = store.leaf_hashes(0, total)
    read: list[int] = []
    real = store.leaf_hashes

    def counting(start: int, end: int) -> list[bytes]:
        read.append(end - start)
        return real(start, end)

    store.leaf_hashes = counting  # type: ignore[method-assign]
    log = AuditLog(store, origin=signer.name)
    sizes = sorted(store._heads)

    def naive(start: int, end: int) -> bytes:
        return root_of(leaves[start:end])

    monkeypatch.setattr("audit.log.LEAF_RUN", 16)
    budget = 2 * 16 * total.bit_length()  # O(LEAF_RUN * log n) leaves per proof, not O(n)
    for size in (sizes[-1], sizes[len(sizes) // 2], sizes[40]):
        for index in (0, 1, size // 3, size - 1):
            read.clear()
            proof = inclusion_proof(index, size, log._oracle(size, size))
            assert proof == inclusion_proof(index, size, naive) and sum(read) <= budget
    for old, new in ((sizes[5], sizes[-1]), (sizes[50], sizes[100]), (sizes[-2], sizes[-1])):
        read.clear()
        proof = consistency_proof(old, new, log._oracle(old, new))
        assert proof == consistency_proof(old, new, naive) and sum(read) <= budget
