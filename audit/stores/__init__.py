"""Where the log lives: the ``Store`` protocol, its value types, and ``open_store`` for a URL or path.

A store keeps entries (canonical bytes, leaf hash, query columns), the tree head after every append
(size, root, compact range), signed checkpoints, and a little metadata (origin, verifier key). Appends
assign gap-free indexes and are durable when they return. Adapters: ``memory`` (the fake), ``sqlite``
(default), ``postgres`` (several writers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from audit.entry import IndexFields
from audit.merkle import EMPTY_ROOT, CompactRange


@dataclass(frozen=True)
class Record:
    """One entry on its way in: canonical bytes, their leaf hash and the indexed fields."""

    data: bytes
    leaf_hash: bytes
    fields: IndexFields


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored. ``fields`` are the query columns the store keeps beside it (None when the
    store derives them on the fly); verification checks them against the entry, because a query that
    filters on an edited column would hide entries that still verify."""

    index: int
    data: bytes
    leaf_hash: bytes
    fields: IndexFields | None = None


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    range_blob: bytes

    def compact(self) -> CompactRange:
        return CompactRange.from_bytes(self.size, self.range_blob)

    @classmethod
    def empty(cls) -> TreeHead:
        return cls(0, EMPTY_ROOT, b"")

    def extended(self, leaves: Sequence[bytes]) -> TreeHead:
        compact = self.compact()
        compact.extend(leaves)
        return TreeHead(compact.size, compact.root(), compact.to_bytes())


@dataclass(frozen=True)
class Archived:
    """A prefix [first, size) whose entry bodies were dropped after it was archived. The compact range
    at ``size`` stays, so new heads extend it; ``location`` names where the archive went and ``before``
    is the entry time no archived entry reaches."""

    first: int
    size: int
    range_blob: bytes
    location: str
    before: str

    def head(self) -> TreeHead:
        compact = CompactRange.from_bytes(self.size, self.range_blob)
        return TreeHead(self.size, compact.root(), self.range_blob)


@dataclass(frozen=True)
class Query:
    """Entry filters; times are entry time strings (``audit.entry.format_time``), until is exclusive.

    Pagination is by cursor: entries with index > ``after`` (and < ``before`` when set), at most
    ``limit`` (None: all). ``before`` lets a reader walk the log backwards in bounded index windows.
    """

    since: str | None = None
    until: str | None = None
    verdict: str | None = None
    policy: str | None = None
    namespace: str | None = None
    user: str | None = None
    kind: str | None = None
    source: str | None = None
    after: int = -1
    limit: int | None = None
    before: int | None = None

    def matches(self, index: int, fields: IndexFields) -> bool:
        checks = (
            index > self.after,
            self.before is None or index < self.before,
            self.since is None or fields.time >= self.since,
            self.until is None or fields.time < self.until,
            self.verdict is None or fields.verdict == self.verdict,
            self.policy is None or self.policy in fields.policies,
            self.namespace is None or fields.namespace == self.namespace,
            self.user is None or fields.user == self.user,
            self.kind is None or fields.kind == self.kind,
            self.source is None or fields.source == self.source,
        )
        return all(checks)


class Store(Protocol):
    def append(self, records: Sequence[Record]) -> TreeHead:
        """Store records at the next indexes; return the new head once it is durable."""
        ...

    def head(self) -> TreeHead: ...

    def head_at(self, size: int) -> TreeHead | None: ...

    def head_between(self, low: int, high: int) -> TreeHead | None:
        """The smallest stored head with low <= size < high (its compact range holds old subtrees)."""
        ...

    def state(self) -> tuple[TreeHead, int]:
        """The head and one past the highest stored index, read together (they must agree)."""
        ...

    def leaf_hashes(self, start: int, end: int) -> list[bytes]: ...

    def entries(self, start: int, end: int) -> list[StoredEntry]: ...

    def find(self, query: Query) -> list[StoredEntry]: ...

    def checkpoints(self) -> list[tuple[int, str]]: ...

    def latest_checkpoint(self) -> tuple[int, str] | None: ...

    def checkpoint_at(self, size: int) -> str | None: ...

    def add_checkpoint(self, size: int, note: str) -> str:
        """Keep ``note`` for ``size`` unless one is already kept; return the kept note."""
        ...

    def meta(self, key: str, default: str | None = None) -> str | None:
        """The value stored for ``key``; store ``default`` first when absent and given."""
        ...

    def archived(self) -> list[Archived]:
        """The prefixes dropped after archiving, oldest first (contiguous from index 0)."""
        ...

    def close(self) -> None: ...


# Given the head before an append, the head after it and the latest checkpoint (size, note), the note
# to keep for the new head, or None to leave it unsigned (the writer then signs it on its own).
Seal = Callable[[TreeHead, TreeHead, "tuple[int, str] | None"], "str | None"]


@runtime_checkable
class Sealing(Protocol):
    """A store that can keep a batch's checkpoint in the transaction that appends the batch: one
    durable write per batch instead of two."""

    def append_sealed(self, records: Sequence[Record], seal: Seal) -> tuple[TreeHead, bool]:
        """``append``, and in the same transaction the note ``seal`` gives; return the new head and
        whether a note was kept for it."""
        ...


@runtime_checkable
class Prunable(Protocol):
    """A store that can drop the entry bodies of an archived prefix (the durable ones can)."""

    def drop_archived(self, record: Archived) -> None:
        """Record ``record`` and delete the entries below ``record.size`` in one transaction."""
        ...


def open_store(target: str | os.PathLike[str]) -> Store:
    """``postgresql://…`` (or ``postgres://``) opens PostgreSQL, ``:memory:`` the fake, else SQLite."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        from audit.stores.postgres import PostgresStore

        return PostgresStore(text)
    if text == ":memory:":
        from audit.stores.memory import MemoryStore

        return MemoryStore()
    from audit.stores.sqlite import SQLiteStore

    return SQLiteStore(text)
