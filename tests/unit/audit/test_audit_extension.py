"""Signing after a batch shows the new head extends the last checkpoint with one read of the leaves added,
and leaves every case it cannot show to the consistency proof."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit import AuditLog, canonical
from audit.checkpoint import peek_checkpoint
from audit.entry import index_fields
from audit.extension import shown_to_extend
from audit.merkle import leaf_hash
from audit.note import Ed25519Signer
from audit.stores import Record, TreeHead
from audit.stores.memory import MemoryStore

Make = Callable[..., dict[str, Any]]


class CountingStore(MemoryStore):
    """The fake store, counting the reads a signature needs."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.reads[name] = self.reads.get(name, 0) + 1

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        self._count("leaf_hashes")
        return super().leaf_hashes(start, end)

    def head_at(self, size: int) -> TreeHead | None:
        self._count("head_at")
        return super().head_at(size)

    def head_between(self, low: int, high: int) -> TreeHead | None:
        self._count("head_between")
        return super().head_between(low, high)


def _records(make: Make, start: int, count: int) -> list[Record]:
    out = []
    for i in range(start, start + count):
        data = canonical(make(i))
        out.append(Record(data, leaf_hash(data), index_fields(make(i))))
    return out


def _log(signer: Ed25519Signer, make: Make, batches: tuple[int, ...]) -> tuple[AuditLog, CountingStore]:
    store = CountingStore()
    log = AuditLog.open(store, signer=signer)
    done = 0
    for size in batches:
        store.append(_records(make, done, size))
        log.sign_pending()
        done += size
    return log, store


def test_signing_a_batch_reads_the_leaves_added_once(signer: Ed25519Signer, make: Make) -> None:
    log, store = _log(signer, make, (300, 300))  # wide enough that a proof would hash subtrees of leaves
    store.append(_records(make, 600, 300))
    store.reads.clear()
    log.sign_pending()
    assert store.reads == {"head_at": 1, "leaf_hashes": 1}
    assert store.checkpoint_at(900) is not None
    log.close()


def test_what_it_cannot_show_goes_to_the_proof(
    signer: Ed25519Signer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, store = _log(signer, make, (5, 7))
    latest = store.latest_checkpoint()
    assert latest is not None
    root = peek_checkpoint(latest[1]).root
    store.append(_records(make, 12, 4))
    head = store.head()
    assert shown_to_extend(store, 12, root, head)
    assert not shown_to_extend(store, 12, b"\x01" * 32, head)  # not the checkpointed root
    assert not shown_to_extend(store, 0, root, head)  # the empty tree: nothing to show
    assert not shown_to_extend(store, 20, root, head)  # beyond the head
    store._heads[12] = TreeHead(12, root, b"\x00" * 5)  # a malformed compact range: no exception
    assert not shown_to_extend(store, 12, root, head)
    store._heads[12] = TreeHead(12, root, b"\x00" * 64)  # a range that does not give the root
    assert not shown_to_extend(store, 12, root, head)
    monkeypatch.setattr("audit.extension.DIRECT_LIMIT", 3)
    log2, store2 = _log(signer, make, (5, 7))
    store2.append(_records(make, 12, 4))
    assert not shown_to_extend(store2, 12, root, store2.head())  # too many leaves to read
    store2.reads.clear()
    log2.sign_pending()  # the proof signs it
    assert store2.reads.get("leaf_hashes", 0) >= 1 and store2.checkpoint_at(16) is not None
    log.close()
    log2.close()
