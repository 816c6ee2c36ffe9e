"""The PostgreSQL store: several writers (threads and processes) share one gap-free, verifiable log."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit import AuditLog, Query, load_signer, load_verifier, verify_proof
from audit.checkpoint import peek_checkpoint
from audit.keys import KeyFiles

ROOT = Path(__file__).resolve().parents[3]
WRITER = """
import json, sys
from datetime import UTC, datetime
from audit import AuditLog, load_signer, make_entry
dsn, key, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
def make(i):
    resource = {"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": f"p{i}"}
    now = datetime.now(UTC)
    return make_entry(time=now, source="ci", uid=f"uid-{i}", operation="CREATE", resource=resource, verdict="allowed")
with AuditLog.open(dsn, signer=load_signer(key)) as log:
    futures = [log.submit(make(base + i)) for i in range(60)]
    print(json.dumps([f.result() for f in futures]))
"""


Make = Callable[[int], dict[str, Any]]


def test_append_query_prove_verify(pg_dsn: str, keyfiles: KeyFiles, make: Make) -> None:
    verifier = load_verifier(keyfiles.vkey)
    with AuditLog.open(pg_dsn, signer=load_signer(keyfiles.key)) as log:
        assert [log.append(make(i)) for i in range(10)] == list(range(10))
        assert [e.index for e in log.query(Query(verdict="denied", namespace="ns-1"))] == [1, 7]
        assert [e.index for e in log.query(Query(policy="gpu-limits", after=4, limit=3))] == [5, 6, 7]
        log.sign_pending()
        checkpoint, _ = verify_proof(log.prove(3), verifier)
        assert checkpoint.size == 10
    with AuditLog.open(pg_dsn) as log:
        assert log.verify(verifier).ok


def test_concurrent_writers_leave_no_gaps_and_no_duplicates(
    pg_dsn: str, keyfiles: KeyFiles, make: Make
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_dsn, str(keyfiles.key), str(1000 * (n + 1))],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for n in range(3)
    ]
    indexes: list[int] = []
    lock = threading.Lock()

    def write(base: int) -> None:
        with AuditLog.open(pg_dsn, signer=load_signer(keyfiles.key)) as log:
            for i in range(40):
                got = log.append(make(base + i))
                with lock:
                    indexes.append(got)

    threads = [threading.Thread(target=write, args=(10_000 * (n + 1),)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        indexes.extend(json.loads(out))
    total = 3 * 40 + 3 * 60
    assert sorted(indexes) == list(range(total))
    verifier = load_verifier(keyfiles.vkey)
    with AuditLog.open(pg_dsn, signer=load_signer(keyfiles.key)) as log:
        report = log.verify(verifier)
        assert report.ok and report.entries == total and report.unsigned == 0
        assert peek_checkpoint(log.checkpoint() or "").size == total
        uids = [e.entry["uid"] for e in log.query(Query())]
        assert len(set(uids)) == total


def test_a_query_bounded_above_reads_only_its_window(pg_dsn: str, keyfiles: KeyFiles, make: Make) -> None:
    # The console walks the log backwards in index windows (Query.before).
    with AuditLog.open(pg_dsn, signer=load_signer(keyfiles.key)) as log:
        for i in range(30):
            log.append(make(i))
        assert [e.index for e in log.query(Query(after=9, before=20))] == list(range(10, 20))
        assert [e.index for e in log.query(Query(verdict="denied", after=9, before=20, limit=2))] == [11, 13]
