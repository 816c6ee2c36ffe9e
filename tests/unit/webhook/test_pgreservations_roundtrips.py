"""What the PostgreSQL reservation store sends for each call, read from libpq's own protocol trace: a
read of a pool's reservations (asked for every GPU admission into a pool with a quota, allowed or not)
and a release are one statement, one round trip, with no transaction opened and committed around it.

Every round trip holds the evaluation thread and, after it, a wait for the process's GIL while the event
loop runs; four per read (BEGIN, SET LOCAL, SELECT, COMMIT) made the read a large part of a request.
Reads the DSN from POLICYENGINE_TEST_PG and skips without it, or fails when POLICYENGINE_REQUIRE_PG=1.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.reservations import Reservation
from tests.unit.webhook.test_pgreservations import pg_dsn  # noqa: F401  (a fixture: a fresh schema)
from webhook.pgreservations import LOCK_TIMEOUT, PostgresReservations

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)


def sent(store: PostgresReservations, call: Callable[[], object]) -> list[str]:
    """The frontend messages libpq sends for ``call``: their type and, for a Parse or a Query, the SQL."""
    conn = store._conn
    assert conn is not None
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            call()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return [" ".join(line.split("\t")[3:5]) for line in trace if line.split("\t")[1:2] == ["F"]]


def round_trips(messages: list[str]) -> int:
    """Each Sync (extended protocol) or Query (simple protocol) waits for the server's ReadyForQuery."""
    return sum(m.startswith(("Sync", "Query")) for m in messages)


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PostgresReservations]:  # noqa: F811
    s = PostgresReservations(pg_dsn)
    yield s
    s.close()


def test_a_read_is_one_statement_and_one_round_trip(store: PostgresReservations) -> None:
    made = Reservation("team/batch/Job/a", "vision", 8, LATER, ("uid-a",))
    assert store.reserve(made, limit=64, observed=0, now=NOW)
    messages = sent(store, lambda: store.held("vision", NOW))
    assert round_trips(messages) == 1, messages
    assert not any("BEGIN" in m or "COMMIT" in m for m in messages), messages
    assert store.held("vision", NOW) == [made]  # and it reads what was reserved


def test_a_release_is_one_statement_and_one_round_trip(store: PostgresReservations) -> None:
    assert store.reserve(Reservation("k", "vision", 8, LATER, ()), limit=64, observed=0, now=NOW)
    messages = sent(store, lambda: store.release("vision", "k"))
    assert round_trips(messages) == 1, messages
    assert store.held("vision", NOW) == []


def test_the_lock_timeout_bounds_every_statement_of_the_session(store: PostgresReservations) -> None:
    conn = store._conn
    assert conn is not None
    shown = conn.execute("SHOW lock_timeout").fetchone()
    assert shown is not None and shown[0] == LOCK_TIMEOUT
