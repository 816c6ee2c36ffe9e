"""The SQLite ``Store``: one file, a rollback journal, synchronous=FULL, one writer at a time (BEGIN IMMEDIATE).

No shared memory and no memory-mapped I/O. WAL mode keeps its index in a ``-shm`` file that every
connection maps; when that file is truncated or replaced under a running process, the next access is a
SIGBUS that kills it without a word. WAL's exclusive locking mode keeps the index on the heap instead, but
it locks every other connection out, the auditors' API and ``audit query``/``verify`` included. A rollback
journal keeps them all working: a reader locks the file only for the statement it runs, and any file
trouble is an I/O error, reported as a StoreError, never a signal.

The writer (admission's audit append) waits for the statements readers are running when it commits, so
every read here runs in windows of at most ``READ_WINDOW`` rows: an auditor listing a thousand entries,
a filter that matches nothing in a million, or ``audit verify`` of the whole log holds the file for at
most one short statement at a time, never for the whole read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from audit import errors
from audit.errors import StoreError
from audit.stores import Archived, Query, Record, Seal, StoredEntry, TreeHead
from audit.stores.prune import delete_chunk, record_prefix
from audit.stores.sql import ENTRY_COLUMNS, SqlReads, entry_rows, schema, stored_entry, where

READ_WINDOW = 64  # rows one read statement may cover: well under a millisecond of a writer's wait
T = TypeVar("T")

INSERT_ENTRY = "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
STATE = (  # one statement, so one snapshot, even while another process appends
    "SELECT h.size, h.root, h.range_blob, (SELECT COALESCE(MAX(idx), -1) FROM entries) "
    "FROM (SELECT 1) LEFT JOIN (SELECT * FROM heads ORDER BY size DESC LIMIT 1) h ON 1"
)


class SQLiteStore(SqlReads):
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite audit log {path}: {exc}") from exc
        try:
            self._configure()
        except BaseException:
            self._db.close()
            raise

    def _configure(self) -> None:
        try:
            self._db.execute("PRAGMA mmap_size=0")
            mode = str(self._db.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
            self._db.execute("PRAGMA synchronous=FULL")
            with self._write():
                for statement in schema("BLOB", "INTEGER"):
                    self._db.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite audit log {self.path}: {exc}") from exc
        if mode != "delete":  # a log in WAL mode stays so while another process has it open
            raise StoreError(
                f"SQLite audit log {self.path} is in {mode} mode and open in another process: "
                "stop that process once, so that the log can switch to its rollback journal",
                code=errors.STORE_BUSY,
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite audit log {self.path}: {exc}") from exc

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite audit log {self.path}: {exc}") from exc

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return _windowed(start, end, super().leaf_hashes)

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        return _windowed(start, end, super().entries)

    def raw_entries(self, start: int, end: int) -> list[tuple[Any, ...]]:
        return _windowed(start, end, super().raw_entries)

    def find(self, query: Query) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        last = int(self._rows("SELECT COALESCE(MAX(idx), -1) FROM entries")[0][0])
        if query.before is not None:
            last = min(last, query.before - 1)
        low = max(query.after, -1) + 1
        while low <= last and (query.limit is None or len(found) < query.limit):
            limit = None if query.limit is None else query.limit - len(found)
            window = replace(query, after=low - 1, limit=limit)
            tail, params = where(window, self.marker, self.position, before=low + READ_WINDOW)
            rows = self._rows(f"SELECT {ENTRY_COLUMNS} FROM entries" + tail, params)
            found.extend(stored_entry(row) for row in rows)
            low += READ_WINDOW
        return found

    def checkpoints(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while True:
            rows = self._rows(
                "SELECT size, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
                (out[-1][0] if out else -1, READ_WINDOW),
            )
            out.extend((int(size), str(note)) for size, note in rows)
            if len(rows) < READ_WINDOW:
                return out

    def append(self, records: Sequence[Record]) -> TreeHead:
        return self.append_sealed(records, lambda old, new, latest: None)[0]

    def append_sealed(self, records: Sequence[Record], seal: Seal) -> tuple[TreeHead, bool]:
        # One transaction, so one journal and one pair of syncs per batch for entries, head and note.
        with self._write() as db:
            head = _head(db.execute("SELECT size, root, range_blob FROM heads ORDER BY size DESC LIMIT 1"))
            db.executemany(INSERT_ENTRY, entry_rows(head.size, records))
            new = head.extended([r.leaf_hash for r in records])
            db.execute("INSERT INTO heads VALUES (?, ?, ?)", (new.size, new.root, new.range_blob))
            row = db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            note = seal(head, new, (int(row[0]), str(row[1])) if row else None)
            if note is not None:
                db.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, ?)", (new.size, note))
            return new, note is not None

    def head(self) -> TreeHead:
        with self._lock:
            return _head(
                self._db.execute("SELECT size, root, range_blob FROM heads ORDER BY size DESC LIMIT 1")
            )

    def head_at(self, size: int) -> TreeHead | None:
        if size == 0:
            return TreeHead.empty()
        rows = self._rows("SELECT size, root, range_blob FROM heads WHERE size = ?", (size,))
        return _head(iter(rows)) if rows else None

    def head_between(self, low: int, high: int) -> TreeHead | None:
        rows = self._rows(
            "SELECT size, root, range_blob FROM heads WHERE size >= ? AND size < ? ORDER BY size LIMIT 1",
            (low, high),
        )
        return _head(iter(rows)) if rows else None

    def state(self) -> tuple[TreeHead, int]:
        row = self._rows(STATE)[0]
        return _head(iter([row[:3]] if row[0] is not None else [])), int(row[3]) + 1

    def add_checkpoint(self, size: int, note: str) -> str:
        # A full sync like every write: with a rollback journal, a lighter one risks the file on power loss.
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, ?)", (size, note))
            row = db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return str(row[0])

    def meta(self, key: str, default: str | None = None) -> str | None:
        if default is not None:
            with self._write() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, default))
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def drop_archived(self, record: Archived) -> None:
        # The freed pages are reused by later entries; VACUUM gives them back to the file system.
        with self._write() as db:
            record_prefix(lambda sql, params: db.execute(sql, params).fetchall(), record)
        while True:
            with self._write() as db:
                if not delete_chunk(lambda sql, params: db.execute(sql, params).fetchall(), record.size):
                    return

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _windowed(start: int, end: int, read: Callable[[int, int], list[T]]) -> list[T]:
    out: list[T] = []
    for low in range(start, end, READ_WINDOW):
        out.extend(read(low, min(low + READ_WINDOW, end)))
    return out


def _head(cursor: Iterator[Any] | sqlite3.Cursor) -> TreeHead:
    row = next(iter(cursor), None)
    if row is None:
        return TreeHead.empty()
    size, root, blob = row
    return TreeHead(int(size), bytes(root), bytes(blob))
