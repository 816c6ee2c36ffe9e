"""One PostgreSQL connection that comes back: when it is lost, a background thread reconnects with
exponential backoff, and the store learns how long the server has been out of reach.

While the link is down, ``connection()`` raises StoreUnavailable at once instead of waiting, so every
caller gets an answer (the webhook's --audit-failure policy) in the time of a function call; only the
caller that found the loss may wait, for a short window, for the link to come back.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from audit.errors import StoreError, StoreUnavailable

# libpq parameters the log needs unless the DSN says otherwise: a bounded connect, and keepalives so
# that a peer that vanished without a reset (a partition, a dead node) is noticed instead of awaited.
CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
FIRST_DELAY = 0.05  # seconds before the first reconnection attempt
MAX_DELAY = 2.0  # the backoff's ceiling: a server that is back is found within this

logger = logging.getLogger("policyengine.audit")


class Link:
    def __init__(self, dsn: str) -> None:
        try:
            given = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL DSN: {exc}") from exc
        self._dsn = make_conninfo(dsn, **{k: v for k, v in CONNECT_DEFAULTS.items() if k not in given})
        self._cond = threading.Condition()
        self._conn: psycopg.Connection[Any] | None = self._connect()
        self._down_since: float | None = None
        self._why = ""
        self._closed = False
        self._thread: threading.Thread | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL audit log: {exc}") from exc

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection; StoreUnavailable at once while the server is out of reach."""
        with self._cond:
            if self._conn is not None:
                return self._conn
            if self._closed:
                raise StoreUnavailable("the PostgreSQL audit log is closed")
            raise StoreUnavailable(
                f"the PostgreSQL audit log has been unreachable for {self._elapsed():.1f} s "
                f"(reconnecting): {self._why}"
            )

    def lost(self, conn: psycopg.Connection[Any], exc: BaseException) -> None:
        """Report that ``conn`` is gone: drop it and start reconnecting (once, whoever reports first)."""
        with self._cond:
            if self._conn is not conn or self._closed:
                return
            self._conn = None
            self._down_since = time.monotonic()
            self._why = _first_line(exc)
            self._thread = threading.Thread(target=self._reconnect, name="audit-reconnect", daemon=True)
            self._thread.start()
        logger.warning("audit log connection lost; reconnecting", extra={"reason": self._why})
        _close_quietly(conn)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the link to be up; True when it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._conn is not None or self._closed, timeout) and (
                self._conn is not None
            )

    def outage(self) -> float | None:
        """Seconds since the connection was lost, or None while it is up."""
        with self._cond:
            return None if self._down_since is None else self._elapsed()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            conn, self._conn = self._conn, None
            thread = self._thread
            self._cond.notify_all()
        if conn is not None:
            _close_quietly(conn)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _elapsed(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def _reconnect(self) -> None:
        delay = FIRST_DELAY
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, delay):
                    return
            try:
                conn = self._connect()
            except StoreError as exc:
                with self._cond:
                    self._why = _first_line(exc)
                delay = min(delay * 2, MAX_DELAY)
                continue
            with self._cond:
                if self._closed:
                    _close_quietly(conn)
                    return
                seconds = self._elapsed()
                self._conn, self._down_since, self._thread = conn, None, None
                self._cond.notify_all()
            logger.warning("audit log reconnected", extra={"outage_seconds": round(seconds, 3)})
            return


def is_lost(conn: psycopg.Connection[Any], exc: BaseException) -> bool:
    """Whether ``exc`` means the connection itself is gone (and not, say, a failed statement)."""
    return bool(conn.broken or conn.closed or (isinstance(exc, psycopg.OperationalError) and _bad(conn)))


def _bad(conn: psycopg.Connection[Any]) -> bool:
    from psycopg import pq

    return bool(conn.pgconn.status != pq.ConnStatus.OK)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with suppress(Exception):  # closing a dead connection may fail; there is nothing left to release
        conn.close()
