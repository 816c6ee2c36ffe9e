"""Reservations in PostgreSQL, shared by every replica that names the same database (``--reservations
postgresql://…``).

Each reserve is one transaction under a transaction-scoped advisory lock on the pool: drop the pool's
expired rows, sum the others, insert or replace the workload's row only when it fits. Two replicas that
reserve in the same pool at once are serialised by the lock, so they cannot both take the last GPUs.
A read (every GPU admission into a pool with a quota asks one) and a release are one statement each:
one round trip, atomic on its own. The session's ``lock_timeout`` bounds every statement.
A lost or refused connection is StoreError (the caller returns an error result); the next call connects
again. Connections use the audit log's libpq defaults (bounded connect, keepalives).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext, suppress
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from audit.stores.pglink import CONNECT_DEFAULTS
from policyengine.reservations import PoolFull, Reservation, StoreError, StoreEvents
from webhook.reservations import MAX_ENTRIES, MAX_KEY, MAX_UIDS

T = TypeVar("T")

# The two-key advisory lock space (class, pool hash) is apart from the audit log's one-key lock. Two
# pools whose hashtext collides only wait for each other; they are never counted together.
LOCK_CLASS = 0x7265_7376  # "resv"
LOCK_TIMEOUT = "2s"  # a replica stuck holding a pool's lock costs others an error result, not a hang
TABLE = "policyengine_reservations"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " pool TEXT NOT NULL, key TEXT NOT NULL, gpus BIGINT NOT NULL CHECK (gpus >= 0),"
    " expires TIMESTAMPTZ NOT NULL, owner_uids TEXT[] NOT NULL DEFAULT '{}',"
    " PRIMARY KEY (pool, key))"
)
SET_TIMEOUT = f"SET lock_timeout = '{LOCK_TIMEOUT}'"
LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
EXPIRE = f"DELETE FROM {TABLE} WHERE pool = %s AND expires <= %s"
OTHERS = f"SELECT COALESCE(SUM(gpus), 0), COUNT(*) FROM {TABLE} WHERE pool = %s AND key <> %s"
UPSERT = (
    f"INSERT INTO {TABLE} (pool, key, gpus, expires, owner_uids) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (pool, key) DO UPDATE SET gpus = EXCLUDED.gpus, expires = EXCLUDED.expires, "
    "owner_uids = EXCLUDED.owner_uids"
)
HELD = f"SELECT key, gpus, expires, owner_uids FROM {TABLE} WHERE pool = %s AND expires > %s ORDER BY key"
RELEASE = f"DELETE FROM {TABLE} WHERE pool = %s AND key = %s"


class PostgresReservations:
    """A ReservationStore on one PostgreSQL connection (calls of one process take turns on it)."""

    def __init__(self, dsn: str, *, max_entries: int = MAX_ENTRIES) -> None:
        try:
            given = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL DSN for the reservations: {exc}") from None
        self._dsn = make_conninfo(dsn, **{k: v for k, v in CONNECT_DEFAULTS.items() if k not in given})
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self.errors = 0
        self.events: StoreEvents = lambda event, pool: None  # the webhook counts them as metrics
        self.last_error = ""

        def create(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(LOCK, (LOCK_CLASS, ""))  # replicas starting together: one CREATE at a time
            cur.execute(SCHEMA)

        self._transact(create)

    # -- ReservationStore ----------------------------------------------------------------------------

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        def read(cur: psycopg.Cursor[Any]) -> list[Reservation]:
            cur.execute(HELD, (pool, now))
            return [Reservation(k, pool, int(g), e, tuple(u or ())) for k, g, e, u in cur.fetchall()]

        return self._run(read)  # one statement: its own snapshot, no transaction to open and commit

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        r = reservation
        if not 0 < len(r.key) <= MAX_KEY or len(r.owner_uids) > MAX_UIDS or r.expires.tzinfo is None:
            raise StoreError(f"reservation {r.key[:80]!r}: key, owner uids or expires out of bounds")

        def decide(cur: psycopg.Cursor[Any]) -> bool:
            cur.execute(LOCK, (LOCK_CLASS, r.pool))
            cur.execute(EXPIRE, (r.pool, now))
            cur.execute(OTHERS, (r.pool, r.key))
            row = cur.fetchone()
            others, count = (int(row[0]), int(row[1])) if row else (0, 0)
            if observed + others + r.gpus > limit:
                return False
            if count >= self.max_entries:
                raise PoolFull(
                    f"quota pool {r.pool!r} already holds {count} reservations, the most one pool keeps"
                )
            cur.execute(UPSERT, (r.pool, r.key, r.gpus, r.expires, list(r.owner_uids)))
            return True

        return self._transact(decide)

    def release(self, pool: str, key: str) -> None:
        def delete(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(RELEASE, (pool, key))

        self._run(delete)  # one statement: atomic on its own

    def status(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "store": "postgresql",
                "connected": self._conn is not None,
                "errors": self.errors,
            }
            if self.last_error:
                out["lastError"] = self.last_error
            return out

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    # -- one statement or transaction ---------------------------------------------------------------

    def _transact(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        return self._run(work, transaction=True)

    def _run(self, work: Callable[[psycopg.Cursor[Any]], T], *, transaction: bool = False) -> T:
        """``work`` on the connection, in a transaction when it runs more than one statement. A read
        is one round trip: every one the request waits for is a wait for this process's GIL too."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction() if transaction else nullcontext(), conn.cursor() as cur:
                    return work(cur)
            except StoreError as exc:
                self._fail(str(exc))
                raise
            except psycopg.Error as exc:
                message = f"PostgreSQL reservations: {type(exc).__name__}: {_first_line(exc)}"
                self._fail(message)
                raise StoreError(message) from None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self._drop()
        conn = psycopg.connect(self._dsn, autocommit=True)  # transactions are explicit
        try:
            conn.execute(SET_TIMEOUT)  # for the session, not once per transaction
        except psycopg.Error:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _fail(self, message: str) -> None:
        self.events("error", "")
        self.errors += 1
        self.last_error = message
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):  # closing a dead connection may fail; there is nothing to release
                conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
