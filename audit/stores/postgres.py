"""The PostgreSQL ``Store``: several webhook replicas append to one gap-free log.

Each append runs in one transaction under a transaction-scoped advisory lock, reads the head, inserts
at the next indexes and writes the new head; a sequence is never used, since a rolled-back transaction
would leave a gap. Commit returns once PostgreSQL has made the transaction durable. A lost connection
comes back by itself (``pglink``); until it does, every operation fails at once with StoreUnavailable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from audit.errors import StoreError, StoreUnavailable
from audit.stores import Archived, Record, TreeHead
from audit.stores.pglink import Link, is_lost, logger
from audit.stores.prune import delete_chunk, record_prefix
from audit.stores.sql import SqlReads, entry_rows, schema

T = TypeVar("T")

LOCK_KEY = 0x706F6C6963790A  # "policy\n": one advisory lock id for the audit log
LOCK = "SELECT pg_advisory_xact_lock(%s)"
RETRY_WINDOW = 2.0  # seconds an operation that lost its connection waits for it to come back
COPY_ENTRIES = "COPY entries FROM STDIN"
HEAD = "SELECT size, root, range_blob FROM heads ORDER BY size DESC LIMIT 1"
STATE = (  # one statement, so one snapshot, while other replicas append
    "SELECT h.size, h.root, h.range_blob, (SELECT COALESCE(MAX(idx), -1) FROM entries) "
    "FROM (SELECT 1) AS one LEFT JOIN (" + HEAD + ") AS h ON true"
)


class PostgresStore(SqlReads):
    marker = "%s"
    position = "strpos"

    def __init__(self, dsn: str, *, retry_window: float = RETRY_WINDOW) -> None:
        self._lock = threading.RLock()
        self._retry_window = retry_window
        self._unsure: TreeHead | None = None  # a batch whose COMMIT was sent but never confirmed
        self._link = Link(dsn)
        try:
            self._transact(lambda cur: [cur.execute(statement) for statement in schema("BYTEA", "BIGINT")])
        except BaseException:
            self._link.close()
            raise

    def _attempt(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on the connection. If the connection is lost, wait up to the retry window for
        the link to come back and run it again: ``work`` must be safe to repeat (a read, or a write
        transaction that first finds out whether its previous attempt landed)."""
        with self._lock:
            deadline = time.monotonic() + self._retry_window
            while True:
                conn = self._link.connection()  # StoreUnavailable at once while the link is down
                try:
                    return work(conn)
                except psycopg.Error as exc:
                    if not is_lost(conn, exc):
                        raise StoreError(f"PostgreSQL audit log: {exc}") from exc
                    self._link.lost(conn, exc)
                    if not self._link.wait(max(0.0, deadline - time.monotonic())):
                        raise StoreUnavailable(f"PostgreSQL audit log: connection lost: {exc}") from exc

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        def read(conn: psycopg.Connection[Any]) -> list[Any]:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        return self._attempt(read)

    def _transact(self, body: Callable[[psycopg.Cursor[Any]], T], *, lock: bool = True) -> T:
        """``body`` in one transaction under the log's advisory lock (unless ``lock`` is False), repeated
        if the connection is lost."""

        def run(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction(), conn.cursor() as cur:
                if lock:
                    cur.execute(LOCK, (LOCK_KEY,))
                return body(cur)

        return self._attempt(run)

    def append(self, records: Sequence[Record]) -> TreeHead:
        """Append in one transaction; after a lost connection, retry within the window. The COMMIT of the
        lost attempt may have landed: the retry first looks, under the advisory lock (so that attempt
        has finished one way or the other), for the head it would have written, and writes only if
        it is absent, so an entry is never stored twice."""
        leaves = [r.leaf_hash for r in records]
        tried: list[TreeHead] = []

        def body(cur: psycopg.Cursor[Any]) -> TreeHead:
            self._settle(cur)
            if tried and _landed(cur, tried[0], leaves):
                return tried[0]
            cur.execute(HEAD)
            head = _head(cur.fetchone())
            # COPY: one statement for the batch, not one per entry (the lock is held until the commit).
            with cur.copy(COPY_ENTRIES) as copy:
                for row in entry_rows(head.size, records):
                    copy.write_row(row)
            new = head.extended(leaves)
            cur.execute("INSERT INTO heads VALUES (%s, %s, %s)", (new.size, new.root, new.range_blob))
            tried[:] = [new]  # from here on, a lost connection leaves the outcome unknown
            return new

        try:
            return self._transact(body)
        except StoreUnavailable:
            with self._lock:
                if tried:
                    self._unsure = tried[0]
            raise

    def _settle(self, cur: psycopg.Cursor[Any]) -> None:
        """Say whether the batch whose outcome was left unknown landed (its callers were told it failed)."""
        unsure, self._unsure = self._unsure, None
        if unsure is None:
            return
        cur.execute("SELECT root FROM heads WHERE size = %s", (unsure.size,))
        row = cur.fetchone()
        landed = row is not None and bytes(row[0]) == unsure.root
        logger.warning(
            "an audit batch reported as failed when the connection was lost "
            + ("was committed" if landed else "was not committed"),
            extra={"head_size": unsure.size, "committed": landed},
        )

    def outage(self) -> float | None:
        """Seconds the server has been out of reach, None while connected."""
        return self._link.outage()

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
        def body(cur: psycopg.Cursor[Any]) -> str:  # safe to repeat: the first note kept wins
            cur.execute("INSERT INTO checkpoints VALUES (%s, %s) ON CONFLICT (size) DO NOTHING", (size, note))
            cur.execute("SELECT note FROM checkpoints WHERE size = %s", (size,))
            row = cur.fetchone()
            return str(row[0]) if row else note

        # Not under the append lock: the first note kept for a size wins whoever inserts it, and holding
        # the lock through this commit's flush would stall every replica's appends for it.
        return self._transact(body, lock=False)

    def meta(self, key: str, default: str | None = None) -> str | None:
        if default is not None:
            insert = "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
            self._transact(lambda cur: cur.execute(insert, (key, default)))
        rows = self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def drop_archived(self, record: Archived) -> None:
        """Under the log's advisory lock, like an append, a chunk per transaction (``prune``); safe to
        repeat after a lost connection (a recorded prefix is found recorded, deleted rows gone)."""
        self._transact(lambda cur: record_prefix(_execute(cur), record))
        while self._transact(lambda cur: delete_chunk(_execute(cur), record.size)):
            pass

    def close(self) -> None:
        self._link.close()


def _execute(cur: psycopg.Cursor[Any]) -> Callable[[str, Sequence[object]], list[Any]]:
    """``prune``'s statements (``?`` markers) on this cursor."""

    def execute(sql: str, params: Sequence[object]) -> list[Any]:
        cur.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description is not None else []

    return execute


def _landed(cur: psycopg.Cursor[Any], head: TreeHead, leaves: Sequence[bytes]) -> bool:
    """Whether ``head`` is stored with ``leaves`` as its last entries: the attempt that built it landed."""
    cur.execute("SELECT root FROM heads WHERE size = %s", (head.size,))
    row = cur.fetchone()
    if row is None or bytes(row[0]) != head.root:
        return False
    cur.execute(
        "SELECT leaf_hash FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx",
        (head.size - len(leaves), head.size),
    )
    return [bytes(r[0]) for r in cur.fetchall()] == list(leaves)


def _head(row: Any) -> TreeHead:
    if row is None:
        return TreeHead.empty()
    size, root, blob = row
    return TreeHead(int(size), bytes(root), bytes(blob))
