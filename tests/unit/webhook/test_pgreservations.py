"""The PostgreSQL reservation store against a real server: one transaction per reserve under the pool's
lock, so concurrent reservers from separate connections (replicas) never take more than the limit.

Reads the DSN from POLICYENGINE_TEST_PG and skips without it, or fails when POLICYENGINE_REQUIRE_PG=1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.reservations import PoolFull, Reservation, StoreError
from tests.helpers import postgres_schema
from webhook.pgreservations import PostgresReservations
from webhook.reservations import open_store

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    with postgres_schema("reservations_test_") as dsn:
        yield dsn


def res(key: str, gpus: int = 8, pool: str = "vision", expires: datetime = LATER) -> Reservation:
    return Reservation(key=key, pool=pool, gpus=gpus, expires=expires, owner_uids=(f"uid-{key}",))


def test_reserve_limit_replace_release_and_expiry(pg_dsn: str) -> None:
    s = open_store(pg_dsn, None)
    assert isinstance(s, PostgresReservations)
    assert s.reserve(res("a"), limit=64, observed=48, now=NOW)
    assert s.reserve(res("b"), limit=64, observed=48, now=NOW)
    assert not s.reserve(res("c"), limit=64, observed=48, now=NOW)
    renewed = res("a", expires=LATER + timedelta(minutes=1))
    assert s.reserve(renewed, limit=64, observed=48, now=NOW)  # the same key is replaced, not added
    assert s.held("vision", NOW) == [renewed, res("b")]
    assert s.held("speech", NOW) == []
    s.release("vision", "a")
    assert s.held("vision", NOW) == [res("b")]
    after = LATER + timedelta(seconds=1)
    assert s.held("vision", after) == []
    assert s.reserve(res("c", gpus=16, expires=after + timedelta(minutes=2)), limit=16, observed=0, now=after)
    s.close()


def test_the_entry_cap_refuses_the_workload_as_pool_full(pg_dsn: str) -> None:
    s = PostgresReservations(pg_dsn, max_entries=2)
    assert s.reserve(res("a", 1), limit=64, observed=0, now=NOW)
    assert s.reserve(res("b", 1), limit=64, observed=0, now=NOW)
    with pytest.raises(PoolFull, match="already holds 2 reservations"):
        s.reserve(res("c", 1), limit=64, observed=0, now=NOW)
    assert s.reserve(res("a", 2), limit=64, observed=0, now=NOW)
    s.close()


def test_fifty_concurrent_reservers_each_on_its_own_connection_get_exactly_the_limit(pg_dsn: str) -> None:
    stores = [PostgresReservations(pg_dsn) for _ in range(50)]  # fifty replicas, fifty connections
    start = threading.Barrier(50)

    def one(i: int) -> bool:
        start.wait(timeout=60)
        return stores[i].reserve(res(f"team/batch/Job/j{i}"), limit=64, observed=0, now=NOW)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert sum(results) == 8
    held = stores[0].held("vision", NOW)
    assert len(held) == 8 and sum(r.gpus for r in held) == 64
    for s in stores:
        s.close()


def test_an_unreachable_server_is_a_store_error(pg_dsn: str) -> None:
    with pytest.raises(StoreError, match="PostgreSQL reservations"):
        PostgresReservations("postgresql://nobody@127.0.0.1:9/none?connect_timeout=5")
    with pytest.raises(StoreError, match="invalid PostgreSQL DSN"):
        PostgresReservations("postgresql://x?notaparameter=1")


def test_a_lost_connection_is_a_store_error_then_reconnects(pg_dsn: str) -> None:
    import psycopg

    s = PostgresReservations(pg_dsn)
    assert s.reserve(res("a"), limit=64, observed=0, now=NOW)
    conn = s._conn
    assert conn is not None
    pid = conn.info.backend_pid
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match="PostgreSQL reservations"):
        s.reserve(res("b"), limit=64, observed=0, now=NOW)
    assert s.status()["errors"] == 1
    assert s.reserve(res("b"), limit=64, observed=0, now=NOW)  # the next call connects again
    assert [r.key for r in s.held("vision", NOW)] == ["a", "b"]
    s.close()
