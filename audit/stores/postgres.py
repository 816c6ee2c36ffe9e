"""The PostgreSQL ``Store``: several webhook replicas append to one gap-free log.

Each append runs in one transaction under a transaction-scoped advisory lock, reads the head, inserts
at the next indexes and writes the new head; a sequence is never used, since a rolled-back transaction
would leave a gap. Commit returns once PostgreSQL has made the transaction durable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from audit.errors import StoreError
from audit.stores import Record, TreeHead
from audit.stores.sql import SqlReads, entry_rows, schema

LOCK_KEY = 0x706F6C6963790A  # "policy\n": one advisory lock id for the audit log
INSERT_ENTRY = "INSERT INTO entries VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
HEAD = "SELECT size, root, range_blob FROM heads ORDER BY size DESC LIMIT 1"
STATE = (  # one statement, so one snapshot, while other replicas append
    "SELECT h.size, h.root, h.range_blob, (SELECT COALESCE(MAX(idx), -1) FROM entries) "
    "FROM (SELECT 1) AS one LEFT JOIN (" + HEAD + ") AS h ON true"
)


class PostgresStore(SqlReads):
    marker = "%s"
    position = "strpos"

    def __init__(self, dsn: str) -> None:
        self._lock = threading.RLock()
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL audit log: {exc}") from exc
        with self._write() as cur:
            for statement in schema("BYTEA", "BIGINT"):
                cur.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL audit log: {exc}") from exc

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                with self._db.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL audit log: {exc}") from exc

    def append(self, records: Sequence[Record]) -> TreeHead:
        with self._write() as cur:
            cur.execute(HEAD)
            head = _head(cur.fetchone())
            cur.executemany(INSERT_ENTRY, entry_rows(head.size, records))
            new = head.extended([r.leaf_hash for r in records])
            cur.execute("INSERT INTO heads VALUES (%s, %s, %s)", (new.size, new.root, new.range_blob))
            return new

    def head(self) -> TreeHead:
        rows = self._rows(HEAD)
        return _head(rows[0] if rows else None)

    def head_at(self, size: int) -> TreeHead | None:
        if size == 0:
            return TreeHead.empty()
        rows = self._rows("SELECT size, root, range_blob FROM heads WHERE size = %s", (size,))
        return _head(rows[0]) if rows else None

    def head_between(self, low: int, high: int) -> TreeHead | None:
        rows = self._rows(
            "SELECT size, root, range_blob FROM heads WHERE size >= %s AND size < %s ORDER BY size LIMIT 1",
            (low, high),
        )
        return _head(rows[0]) if rows else None

    def state(self) -> tuple[TreeHead, int]:
        row = self._rows(STATE)[0]
        return _head(row[:3] if row[0] is not None else None), int(row[3]) + 1

    def add_checkpoint(self, size: int, note: str) -> str:
        with self._write() as cur:
            cur.execute("INSERT INTO checkpoints VALUES (%s, %s) ON CONFLICT (size) DO NOTHING", (size, note))
            cur.execute("SELECT note FROM checkpoints WHERE size = %s", (size,))
            row = cur.fetchone()
            return str(row[0]) if row else note

    def meta(self, key: str, default: str | None = None) -> str | None:
        if default is not None:
            with self._write() as cur:
                cur.execute("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, default))
        rows = self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _head(row: Any) -> TreeHead:
    if row is None:
        return TreeHead.empty()
    size, root, blob = row
    return TreeHead(int(size), bytes(root), bytes(blob))
