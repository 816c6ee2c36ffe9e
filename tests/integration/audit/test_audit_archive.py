"""Retention on the real stores (SQLite file, PostgreSQL): archive a signed prefix, drop it from the live
log, and keep appending, proving and verifying; the archive and the live log verify as one history."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from audit import AuditLog, Query, export, load_signer, load_verifier, verify_proof
from audit.archive import archive
from audit.archive_read import verify_archives
from audit.checkpoint import peek_checkpoint
from audit.entry import format_time
from audit.errors import EntriesArchived, ExportError, StoreCorrupt, StoreError
from audit.keys import KeyFiles
from audit.merkle import verify_consistency
from audit.stores import postgres as postgres_store
from audit.stores import prune
from audit.stores import sqlite as sqlite_store
from tests.helpers import postgres_schema

Make = Callable[[int], dict[str, Any]]
T0 = datetime(2026, 11, 27, tzinfo=UTC)  # the conftest's entry(i) is at T0 + i seconds


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "audit.db")
        return
    with postgres_schema("audit_archive_") as dsn:
        yield dsn


def sql(target: str, statement: str, params: tuple[object, ...] = ()) -> list[Any]:
    """One statement on the store itself, as someone with write access to it would run it."""
    if target.startswith("postgresql://"):
        with psycopg.connect(target, autocommit=True) as con, con.cursor() as cur:
            cur.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description is not None else []
    con = sqlite3.connect(target)
    try:
        rows = con.execute(statement, params).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def before(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def filled(target: str, keyfiles: KeyFiles, make: Make, count: int) -> None:
    with AuditLog.open(target, signer=load_signer(keyfiles.key)) as log:
        for i in range(count):
            log.append(make(i))  # one batch each: a checkpoint at every size
            log.sign_pending()  # signed now, not just after the append was answered


def test_archive_drop_then_append_prove_and_verify_the_whole_history(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 40)
    with AuditLog.open(target, signer=load_signer(keyfiles.key)) as log:
        old = log.checkpoint()
        assert old is not None
        summary = archive(log, before(25), tmp_path / "a1", drop=True, location="s3://cold/audit/a1")
        assert (summary.first, summary.size, summary.dropped) == (0, 25, True)
        assert sql(target, "SELECT COUNT(*), MIN(idx) FROM entries") == [(15, 25)]
        for i in range(40, 60):
            log.append(make(i))  # new heads extend the kept compact range
        new = log.sign_pending()  # a batch is signed just after it is answered
        assert peek_checkpoint(new).size == 60
        # The new checkpoint is consistent with one signed before the drop.
        verify_consistency(
            40, 60, peek_checkpoint(old).root, peek_checkpoint(new).root, log.consistency(40, 60)
        )
        assert verify_proof(log.prove(30), verifier)[0].size == 60
        assert verify_proof(log.prove(25, 40), verifier)[0].size == 40
    with AuditLog.open(target, signer=load_signer(keyfiles.key)) as log:  # recovery from the kept range
        log.append(make(60))
        log.sign_pending()
        assert log.verify(verifier).ok and log.verify(verifier).entries == 61
        whole = verify_archives([tmp_path / "a1"], verifier, log=log, trusted=(old,))
        assert (whole.ok, whole.entries, whole.signed_size) == (True, 61, 61)
    offline = verify_archives([tmp_path / "a1"], verifier)
    assert (offline.ok, offline.entries) == (True, 25)
    lines = (tmp_path / "a1" / "entries.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["uid"] for line in lines] == [f"uid-{i}" for i in range(25)]


def test_reads_of_dropped_entries_name_the_archive(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    filled(target, keyfiles, make, 30)
    with AuditLog.open(target) as log:
        archive(log, before(20), tmp_path / "a1", drop=True, location="s3://cold/audit/a1")
        with pytest.raises(
            EntriesArchived, match=r"entry 5, archived to s3://cold/audit/a1 \(entries \[0, 20\)"
        ):
            log.prove(5)
        with pytest.raises(EntriesArchived, match="s3://cold/audit/a1"):
            log.query(Query(verdict="denied"))
        with pytest.raises(EntriesArchived, match="s3://cold/audit/a1"):
            log.query(Query(since=format_time(before(10))))
        with pytest.raises(EntriesArchived, match="audit archive"):
            export(log, tmp_path / "export")
        # Queries that cannot reach the archived prefix are answered.
        assert [e.index for e in log.query(Query(after=19, verdict="denied"))] == [21, 23, 25, 27, 29]
        assert [e.index for e in log.query(Query(since=format_time(before(20)), limit=2))] == [20, 21]


def test_without_drop_nothing_leaves_the_live_log(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    filled(target, keyfiles, make, 12)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("someone else's\n")
    with AuditLog.open(target) as log:
        summary = archive(log, before(8), tmp_path / "a1")
        assert (summary.size, summary.dropped) == (8, False)
        assert [e.index for e in log.query(Query(limit=3))] == [0, 1, 2]
        with pytest.raises(ExportError) as caught:  # never over another directory's files
            archive(log, before(8), tmp_path / "other")
        assert caught.value.code == "archive_exists"
        with pytest.raises(ExportError) as caught:
            archive(log, before(-5), tmp_path / "a0")
        assert caught.value.code == "archive_empty"
        # The second run drops what the first wrote, once that copy verifies again.
        entries = tmp_path / "a1" / "entries.jsonl"
        good = entries.read_bytes()
        entries.write_bytes(good.replace(b"uid-3", b"uid-Z"))
        with pytest.raises(ExportError) as caught:
            archive(log, before(8), tmp_path / "a1", drop=True)
        assert caught.value.code == "archive_invalid" and "TAMPERED" not in caught.value.message
        assert sql(target, "SELECT COUNT(*) FROM entries") == [(12,)]
        entries.write_bytes(good)
        assert archive(log, before(8), tmp_path / "a1", drop=True).dropped
    assert sql(target, "SELECT COUNT(*) FROM entries") == [(4,)]


def test_archives_chain_and_a_missing_one_is_named(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 30)
    with AuditLog.open(target) as log:
        archive(log, before(10), tmp_path / "a1", drop=True)
        second = archive(log, before(22), tmp_path / "a2", drop=True, location="vault://a2")
        assert (second.first, second.size) == (10, 22)
        assert verify_archives([tmp_path / "a2", tmp_path / "a1"], verifier, log=log).ok
        assert verify_archives([tmp_path / "a2"], verifier).ok  # alone, from its signed start
        missing = verify_archives([tmp_path / "a1"], verifier, log=log)
        assert (missing.ok, missing.code, missing.first_bad_index) == (False, "archive_mismatch", 10)
        assert "vault://a2" in missing.message


def test_an_edited_archive_is_tampering_at_its_index(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 20)
    with AuditLog.open(target) as log:
        archive(log, before(15), tmp_path / "a1", drop=True)
        entries = tmp_path / "a1" / "entries.jsonl"
        lines = entries.read_bytes().splitlines(keepends=True)
        lines[6] = lines[6].replace(b"uid-6", b"uid-X")
        entries.write_bytes(b"".join(lines))
        report = verify_archives([tmp_path / "a1"], verifier, log=log)
        assert (report.ok, report.first_bad_index, report.code) == (False, 6, "root_mismatch")


def test_an_edited_kept_range_is_caught_by_verify_and_by_recovery(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 20)
    with AuditLog.open(target) as log:
        archive(log, before(12), tmp_path / "a1", drop=True)
    forged = bytes(32) * 2  # size 12 has two perfect subtrees: [0, 8) and [8, 12)
    sql(target, "UPDATE archived SET range_blob = ? WHERE size = 12", (forged,))
    with AuditLog.open(target) as log:
        report = log.verify(verifier)
        assert (report.ok, report.first_bad_index, report.code) == (False, 12, "root_mismatch")
    with pytest.raises(StoreCorrupt) as caught:
        AuditLog.open(target, signer=load_signer(keyfiles.key)).close()
    assert caught.value.code == "root_mismatch"


def test_a_removed_checkpoint_of_the_archived_prefix_is_tampering(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 20)
    with AuditLog.open(target) as log:
        archive(log, before(12), tmp_path / "a1", drop=True)
    sql(target, "DELETE FROM checkpoints WHERE size = 12")
    with AuditLog.open(target) as log:
        report = log.verify(verifier)
    assert (report.ok, report.first_bad_index, report.code) == (False, 12, "archive_mismatch")


def test_a_drop_while_a_writer_appends_keeps_one_gap_free_history(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 20)
    stop, started = threading.Event(), threading.Event()
    appended: list[int] = []
    with AuditLog.open(target, signer=load_signer(keyfiles.key)) as writer:

        def keep_appending() -> None:
            while not stop.is_set():
                appended.append(writer.append(make(100 + len(appended))))
                started.set()

        thread = threading.Thread(target=keep_appending)
        thread.start()
        try:
            assert started.wait(30), "the writer did not append within 30 s"
            with AuditLog.open(target) as other:  # another connection, as the CLI beside a server
                archive(other, before(15), tmp_path / "a1", drop=True)
            count = len(appended)
            deadline = time.monotonic() + 30  # a hang guard only: appends go on after the drop
            while len(appended) < count + 3:
                assert time.monotonic() < deadline, "the writer stopped appending after the drop"
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(60)
        assert not thread.is_alive(), "the writer did not stop within 60 s"
        assert appended == list(range(20, 20 + len(appended)))
        writer.sign_pending()
        report = verify_archives([tmp_path / "a1"], verifier, log=writer)
        assert (report.ok, report.entries) == (True, 20 + len(appended))


def test_an_edited_time_column_cannot_get_a_recent_entry_archived(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path
) -> None:
    filled(target, keyfiles, make, 16)
    sql(target, "UPDATE entries SET time = ? WHERE idx >= 8 AND idx < 12", (format_time(T0),))
    with AuditLog.open(target) as log, pytest.raises(StoreCorrupt, match="entry 8 is not before"):
        archive(log, before(8), tmp_path / "a1", drop=True)
    assert sql(target, "SELECT COUNT(*) FROM entries") == [(16,)]


def test_a_drop_cut_short_hides_the_rest_and_a_rerun_finishes_it(
    target: str, keyfiles: KeyFiles, make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = load_verifier(keyfiles.vkey)
    filled(target, keyfiles, make, 20)
    monkeypatch.setattr(prune, "DROP_CHUNK", 3)
    calls: list[int] = []

    def cut_short(execute: prune.Execute, below: int) -> bool:
        calls.append(below)
        if len(calls) > 2:
            raise StoreError("the connection went away")
        return prune.delete_chunk(execute, below)

    for module in (sqlite_store, postgres_store):
        monkeypatch.setattr(module, "delete_chunk", cut_short)
    with AuditLog.open(target) as log, pytest.raises(StoreError, match="went away"):
        archive(log, before(12), tmp_path / "a1", drop=True)
    assert sql(target, "SELECT COUNT(*) FROM entries WHERE idx < 12") == [(6,)]  # two chunks of 3 went
    with AuditLog.open(target, signer=load_signer(keyfiles.key)) as log:  # the rest is invisible
        log.append(make(20))
        log.sign_pending()
        assert log.verify(verifier).ok
        assert [e.index for e in log.query(Query(after=11, limit=2))] == [12, 13]
        with pytest.raises(EntriesArchived):
            log.query(Query())
    for module in (sqlite_store, postgres_store):
        monkeypatch.setattr(module, "delete_chunk", prune.delete_chunk)
    with AuditLog.open(target) as log:
        assert archive(log, before(12), tmp_path / "a1", drop=True).dropped
        assert verify_archives([tmp_path / "a1"], verifier, log=log).ok
    assert sql(target, "SELECT COUNT(*) FROM entries WHERE idx < 12") == [(0,)]
