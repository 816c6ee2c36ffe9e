"""The PostgreSQL store across a lost connection: a server restart under a stream of appends, and a
connection that drops around COMMIT (the outcome unknown to the writer). Every acknowledged entry is in
the log exactly once, the log verifies, and appends resume in the same process."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from audit import AuditLog, Query, canonical, load_signer, load_verifier
from audit.entry import index_fields
from audit.errors import StoreError, StoreUnavailable
from audit.keys import KeyFiles
from audit.merkle import leaf_hash
from audit.stores import Record
from audit.stores.postgres import PostgresStore
from tests.pgcluster import Cluster, own_cluster

ROOT = Path(__file__).resolve().parents[3]
HANG = 60.0  # seconds: a hang guard, never the thing measured

Make = Callable[[int], dict[str, Any]]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from own_cluster()


def _until(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def test_a_server_restart_under_appends_loses_and_doubles_nothing(
    cluster: Cluster, keyfiles: KeyFiles, make: Make
) -> None:
    log = AuditLog.open(cluster.dsn, signer=load_signer(keyfiles.key))
    acked: dict[str, int] = {}  # uid -> index returned to the caller
    failed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        for n in range(1_000_000):
            if stop.is_set():
                return
            entry = make(worker * 1_000_000 + n)
            try:
                index = log.append(entry)
            except StoreError as err:
                with lock:
                    failed.append(err.code)
                time.sleep(0.01)
                continue
            with lock:
                acked[entry["uid"]] = index

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        _until("appends before the restart", lambda: len(acked) >= 100)
        cluster.stop()
        _until("appends failing while the server is down", lambda: len(failed) >= 5)
        assert log.outage() is not None
        assert "store_unavailable" in failed
        before = len(acked)
        cluster.start()
        _until("appends to resume in this process", lambda: len(acked) >= before + 100)
        assert log.outage() is None
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=HANG)
        log.close()

    with AuditLog.open(cluster.dsn) as reader:
        assert reader.verify(load_verifier(keyfiles.vkey)).ok
        uids = [(e.index, e.entry["uid"]) for e in reader.query(Query())]
    by_uid: dict[str, list[int]] = {}
    for index, uid in uids:
        by_uid.setdefault(uid, []).append(index)
    assert all(len(indexes) == 1 for indexes in by_uid.values()), "an entry was written twice"
    for uid, index in acked.items():
        assert by_uid.get(uid) == [index], f"acknowledged entry {uid} is not at its index {index}"
    verify = subprocess.run(
        [sys.executable, "-m", "policyengine", "audit", "verify", "--audit-log", cluster.dsn,
         "--public-key", str(keyfiles.pub)],
        capture_output=True, text=True, cwd=ROOT, timeout=HANG,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


class CommitCutter:
    """A TCP proxy in front of PostgreSQL that, once armed, cuts the client's connection at its next
    COMMIT: ``before`` it reaches the server, or ``after`` the server has committed (the answer lost)."""

    COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the simple-query message psycopg sends to commit

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: str | None = None
        self.cuts = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str) -> None:
        self.mode = mode

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            committed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, committed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, committed), daemon=True).start()

    def _cut(self, *socks: socket.socket) -> None:
        self.mode = None
        self.cuts += 1
        for sock in socks:  # shutdown first: a plain close waits for the other pump's blocked recv
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _up(self, client: socket.socket, server: socket.socket, committed: threading.Event) -> None:
        while chunk := _recv(client):
            if self.mode is not None and self.COMMIT in chunk:
                if self.mode == "before":
                    return self._cut(client, server)
                committed.set()
            try:
                server.sendall(chunk)
            except OSError:
                return
        server.close()

    def _down(self, server: socket.socket, client: socket.socket, committed: threading.Event) -> None:
        while chunk := _recv(server):
            if committed.is_set():  # the server's answer to COMMIT: it committed; the client never learns
                return self._cut(client, server)
            try:
                client.sendall(chunk)
            except OSError:
                return
        client.close()

    def close(self) -> None:
        self._server.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    user = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))


def _record(entry: dict[str, Any]) -> Record:
    data = canonical(entry)
    return Record(data, leaf_hash(data), index_fields(entry))


@pytest.mark.parametrize("cut", ["before", "after"])
def test_a_commit_whose_outcome_is_unknown_is_looked_up_not_written_twice(
    pg_dsn: str, keyfiles: KeyFiles, make: Make, cut: str
) -> None:
    parts = urlsplit(pg_dsn)
    proxy = CommitCutter((parts.hostname or "127.0.0.1", parts.port or 5432))
    store = PostgresStore(_through(pg_dsn, proxy.port))  # the store alone: no background signing commits
    try:
        assert store.append([_record(make(i)) for i in range(3)]).size == 3
        proxy.arm(cut)
        assert store.append([_record(make(3)), _record(make(4))]).size == 5  # cut at this COMMIT
        assert proxy.cuts == 1
        assert store.append([_record(make(5))]).size == 6
    finally:
        store.close()
        proxy.close()
    with AuditLog.open(pg_dsn, signer=load_signer(keyfiles.key)) as log:  # recovery checks the head
        assert log.verify(load_verifier(keyfiles.vkey)).ok
        assert [e.entry["uid"] for e in log.query(Query())] == [f"uid-{i}" for i in range(6)]


def test_an_outage_longer_than_the_retry_window_fails_at_once_and_recovers(
    cluster: Cluster, keyfiles: KeyFiles, make: Make
) -> None:
    with AuditLog.open(cluster.dsn, signer=load_signer(keyfiles.key)) as log:
        assert log.append(make(0)) == 0
        cluster.stop()
        with pytest.raises(StoreUnavailable):
            log.append(make(1))  # finds the loss, waits the window, gives up
        with pytest.raises(StoreUnavailable) as again:
            log.append(make(2))  # the link is known down: no wait, no connection attempt
        assert "unreachable" in again.value.message
        cluster.start()
        _until("the link to come back", lambda: log.outage() is None)
        assert log.append(make(3)) == 1
    with AuditLog.open(cluster.dsn) as reader:
        assert reader.verify(load_verifier(keyfiles.vkey)).ok
        assert [e.entry["uid"] for e in reader.query(Query())] == ["uid-0", "uid-3"]
