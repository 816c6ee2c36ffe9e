"""The SQLite log reads in short windows: with a rollback journal the writer (admission's audit append)
waits for every statement a reader is running, so no read statement may cover more than READ_WINDOW
rows, whatever the auditor asks for; and a windowed read answers exactly what one statement would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog
from audit.note import Ed25519Signer
from audit.stores import Query
from audit.stores.sql import SqlReads
from audit.stores.sqlite import READ_WINDOW, SQLiteStore
from tests.unit.audit.conftest import entry

COUNT = READ_WINDOW * 7 + 5  # windows that do not divide the log evenly


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory, signer: Ed25519Signer) -> Path:
    path = tmp_path_factory.mktemp("windows") / "audit.db"
    with AuditLog.open(path, signer=signer) as log:
        for i in range(COUNT):
            log.append(entry(i))  # one checkpoint each: more checkpoints than a window too
    return path


@pytest.fixture
def store(log_file: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(str(log_file))
    yield store
    store.close()


def rows_per_statement(store: SQLiteStore, read: Callable[[], object]) -> list[int]:
    """The number of rows each statement of ``read`` returned."""
    counts: list[int] = []
    original = store._rows

    def counted(sql: str, params: Any = ()) -> list[Any]:
        rows = original(sql, params)
        counts.append(len(rows))
        return rows

    store._rows = counted  # type: ignore[method-assign]
    try:
        read()
    finally:
        store._rows = original  # type: ignore[method-assign]
    return counts


def one_statement(store: SQLiteStore) -> SqlReads:
    """The same store read the unwindowed way (one statement per call), for comparison."""

    class Whole(SqlReads):
        def _rows(self, sql: str, params: Any = ()) -> list[Any]:
            return store._db.execute(sql, params).fetchall()

    return Whole()


QUERIES = [
    Query(),
    Query(limit=1000),
    Query(limit=7, after=READ_WINDOW - 3),
    Query(verdict="denied", limit=50),
    Query(namespace="team-1", kind="Pod"),
    Query(policy="pack-3", after=100, limit=20),
    Query(user="nobody-matches"),
    Query(after=COUNT + 10),
]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_find_reads_in_windows_and_answers_as_one_statement_would(store: SQLiteStore, query: Query) -> None:
    counts = rows_per_statement(store, lambda: store.find(query))
    assert max(counts) <= READ_WINDOW
    assert [e.index for e in store.find(query)] == [e.index for e in one_statement(store).find(query)]


def test_a_filter_matching_nothing_scans_the_log_window_by_window(store: SQLiteStore) -> None:
    counts = rows_per_statement(store, lambda: store.find(Query(user="nobody-matches")))
    # One statement for the last index, then one per window of the log: no statement covers the log.
    assert len(counts) == 1 + -(-COUNT // READ_WINDOW)


@pytest.mark.parametrize("read", ["entries", "leaf_hashes"])
def test_ranges_read_in_windows(store: SQLiteStore, read: str) -> None:
    counts = rows_per_statement(store, lambda: getattr(store, read)(0, COUNT))
    assert max(counts) <= READ_WINDOW and sum(counts) == COUNT
    assert getattr(store, read)(3, COUNT - 2) == getattr(one_statement(store), read)(3, COUNT - 2)


def test_checkpoints_read_in_windows(store: SQLiteStore) -> None:
    # One checkpoint per append above, plus the empty tree's.
    counts = rows_per_statement(store, store.checkpoints)
    assert max(counts) <= READ_WINDOW
    assert store.checkpoints() == one_statement(store).checkpoints()
    assert len(store.checkpoints()) > READ_WINDOW


def test_a_writer_commits_between_the_windows_of_a_long_read(store: SQLiteStore, log_file: Path) -> None:
    """While an auditor's read is between two windows it holds no lock: another connection commits."""
    writer = sqlite3.connect(log_file, isolation_level=None, timeout=0)
    committed: list[bool] = []
    original = store._rows

    def read_then_write(sql: str, params: Any = ()) -> list[Any]:
        rows = original(sql, params)
        if not committed:  # a zero timeout: any lock a reader still held would raise "database is locked"
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO meta VALUES ('probe', 'x')")
            writer.execute("COMMIT")
            committed.append(True)
        return rows

    store._rows = read_then_write  # type: ignore[method-assign]
    try:
        store.entries(0, COUNT)
    finally:
        store._rows = original  # type: ignore[method-assign]
        writer.close()
    assert committed == [True]
