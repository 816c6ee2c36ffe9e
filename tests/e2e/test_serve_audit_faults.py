"""`serve` when its audit log's storage misbehaves: a PostgreSQL restart under load (the replica goes
unready, answers by --audit-failure, comes back by itself, and asks for a restart through /healthz only
after --audit-restart-after), and SQLite files truncated or replaced under the running server (it lives
on, and fails cleanly with a log line, never by a signal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.pgcluster import Cluster, own_cluster
from tests.unit.webhook.builders import pod, review
from webhook.review import AUDIT_INDEX_KEY

pytestmark = pytest.mark.e2e
HANG = 60.0  # seconds: a hang guard, never the thing measured


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from own_cluster()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policyengine", *args], capture_output=True, text=True, timeout=HANG
    )


def _until(server: Server, what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not predicate():
        assert server.process.poll() is None, f"the server died: {server.stderr.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def _status(server: Server, path: str) -> int:
    with server.client() as client:
        return client.get(path).status_code


def _keys(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert _cli("audit", "keygen", "--origin", "e2e.example/faults", "--out", str(keys)).returncode == 0
    return keys


def test_a_postgres_restart_is_survived_without_restarting_the_replica(
    tmp_path: Path,
    certs: Path,  # noqa: F811
    cluster: Cluster,
) -> None:
    keys = _keys(tmp_path)
    server = _start(
        tmp_path, certs,
        "--audit-log", cluster.dsn, "--audit-key", str(keys / "audit.key"), "--audit-restart-after", "2",
    )  # fmt: skip
    answered: dict[str, int] = {}  # request uid -> audit index returned to the "API server"
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with server.client() as client:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                uid = f"w{worker}-{n}"
                response = client.post("/validate", json=review(pod(image="x:latest"), uid=uid))
                with lock:
                    if response.status_code == 200:
                        answered[uid] = int(response.json()["response"]["auditAnnotations"][AUDIT_INDEX_KEY])
                    else:
                        refused.append(response.json()["error"]["code"])
                if response.status_code != 200:
                    time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(3)]
    for thread in threads:
        thread.start()
    try:
        _until(server, "answers before the restart", lambda: len(answered) >= 30)
        cluster.stop()
        _until(server, "/readyz to fail", lambda: _status(server, "/readyz") == 503)
        _until(server, "reviews to be refused (deny)", lambda: "record_failed" in refused)
        _until(server, "/healthz to ask for a restart", lambda: _status(server, "/healthz") == 503)
        with server.client() as client:
            detail = client.get("/readyz").json()["audit"]
        assert detail["healthy"] is False and detail["outageSeconds"] >= 2
        before = len(answered)
        cluster.start()
        _until(server, "/readyz to pass again", lambda: _status(server, "/readyz") == 200)
        assert _status(server, "/healthz") == 200
        _until(server, "answers after the restart", lambda: len(answered) >= before + 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=HANG)
        _stop(server)
    logs = [line.get("msg") for line in server.logs()]
    assert "audit log connection lost; reconnecting" in logs and "audit log reconnected" in logs

    verify = _cli("audit", "verify", "--audit-log", cluster.dsn, "--public-key", str(keys / "audit.pub"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    entries = json.loads(_cli("audit", "query", "--audit-log", cluster.dsn, "--format", "json").stdout)
    uids = [e["uid"] for e in entries]
    assert len(uids) == len(set(uids)), "a decision was written twice"
    by_index = {e["index"]: e["uid"] for e in entries}
    for uid, index in answered.items():
        assert by_index.get(index) == uid, f"answered decision {uid} (index {index}) is not in the log"


def _replace(path: Path, content: bytes) -> None:
    new = path.with_name(path.name + ".new")
    new.write_bytes(content)
    os.replace(new, path)


def test_sqlite_files_cut_under_the_server_never_kill_it(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    keys = _keys(tmp_path)
    log = tmp_path / "audit.db"
    server = _start(tmp_path, certs, "--audit-log", str(log), "--audit-key", str(keys / "audit.key"))
    shm = Path(str(log) + "-shm")
    try:
        with server.client() as client:
            for n in range(5):
                assert client.post("/validate", json=review(pod(), uid=f"a{n}")).status_code == 200
            # What used to be a SIGBUS: the shared-memory index truncated, then replaced, under the writer.
            if shm.exists():
                os.truncate(shm, 0)
            else:
                shm.write_bytes(b"")
            _replace(shm, b"\xff" * 32768)
            for n in range(5):
                assert client.post("/validate", json=review(pod(), uid=f"b{n}")).status_code == 200
            # Another process reads the live log meanwhile.
            verify = _cli("audit", "verify", "--audit-log", str(log), "--public-key", str(keys / "audit.pub"))
            assert verify.returncode == 0 and "10 entries" in verify.stdout, verify.stdout + verify.stderr
            # The database itself cut to nothing: the store fails, the audit-failure policy answers.
            os.truncate(log, 0)
            refused = client.post("/validate", json=review(pod(), uid="c0"))
            assert refused.status_code == 500 and refused.json()["error"]["code"] == "record_failed"
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200  # not yet past --audit-restart-after
        assert server.process.poll() is None
    finally:
        _stop(server)
    assert server.process.returncode is not None and server.process.returncode >= 0, "killed by a signal"
    failed = [line for line in server.logs() if line.get("msg") == "audit append failed"]
    assert failed and failed[0]["code"] == "store_error" and str(log) in failed[0]["reason"]


def test_the_sigbus_scenario_in_a_bare_writer_process(tmp_path: Path) -> None:
    """The same cut under a process that only appends: it finishes, by exit code, never by signal."""
    keys = _keys(tmp_path)
    script = """
import os, sys
from datetime import UTC, datetime
from audit import AuditLog, load_signer, make_entry
from audit.errors import AuditError
db, key = sys.argv[1], sys.argv[2]
def entry(i):
    resource = {"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": f"p{i}"}
    return make_entry(time=datetime.now(UTC), source="ci", uid=f"u{i}", operation="CREATE",
                      resource=resource, verdict="allowed")
with AuditLog.open(db, signer=load_signer(key)) as log:
    for i in range(5):
        log.append(entry(i))
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(5, 10):
        try:
            print("ok", log.append(entry(i)), flush=True)
        except AuditError as err:
            print("error", err.code, flush=True)
"""
    db = tmp_path / "bare.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(keys / "audit.key")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    shm = Path(str(db) + "-shm")
    if shm.exists():
        os.truncate(shm, 0)
    _replace(shm, b"")
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, f"exit {proc.returncode} (negative: killed by a signal)\n{err}"
    assert out.split("\n")[:5] == [f"ok {i}" for i in range(5, 10)]
