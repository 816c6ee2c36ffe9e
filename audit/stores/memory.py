"""The in-memory fake ``Store``: the same behaviour as the real adapters, nothing durable."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from audit.entry import IndexFields
from audit.stores import Archived, Query, Record, StoredEntry, TreeHead


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[StoredEntry, IndexFields]] = []
        self._heads: dict[int, TreeHead] = {0: TreeHead.empty()}
        self._head = TreeHead.empty()
        self._checkpoints: dict[int, str] = {}
        self._meta: dict[str, str] = {}

    def append(self, records: Sequence[Record]) -> TreeHead:
        with self._lock:
            base = self._head.size
            for offset, record in enumerate(records):
                stored = StoredEntry(base + offset, record.data, record.leaf_hash, record.fields)
                self._entries.append((stored, record.fields))
            self._head = self._head.extended([r.leaf_hash for r in records])
            self._heads[self._head.size] = self._head
            return self._head

    def head(self) -> TreeHead:
        return self._head

    def head_at(self, size: int) -> TreeHead | None:
        return self._heads.get(size)

    def head_between(self, low: int, high: int) -> TreeHead | None:
        sizes = [size for size in self._heads if low <= size < high]
        return self._heads[min(sizes)] if sizes else None

    def state(self) -> tuple[TreeHead, int]:
        with self._lock:
            return self._head, len(self._entries)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return [stored.leaf_hash for stored, _ in self._entries[start:end]]

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        return [stored for stored, _ in self._entries[start:end]]

    def find(self, query: Query) -> list[StoredEntry]:
        out: list[StoredEntry] = []
        for stored, fields in self._entries:
            if query.matches(stored.index, fields):
                out.append(stored)
                if query.limit is not None and len(out) >= query.limit:
                    break
        return out

    def checkpoints(self) -> list[tuple[int, str]]:
        return sorted(self._checkpoints.items())

    def latest_checkpoint(self) -> tuple[int, str] | None:
        if not self._checkpoints:
            return None
        size = max(self._checkpoints)
        return size, self._checkpoints[size]

    def checkpoint_at(self, size: int) -> str | None:
        return self._checkpoints.get(size)

    def add_checkpoint(self, size: int, note: str) -> str:
        with self._lock:
            return self._checkpoints.setdefault(size, note)

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            if default is not None:
                return self._meta.setdefault(key, default)
            return self._meta.get(key)

    def archived(self) -> list[Archived]:
        return []  # nothing to retain: the fake keeps no entry beyond its process

    def close(self) -> None:
        pass
