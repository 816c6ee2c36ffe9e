"""Durable appends/s with several writer processes on one log (the webhook's replicas), and their latency.

Each writer process opens the log with the same key and keeps ``inflight`` appends outstanding (a closed
loop: a new append as soon as one is durable), like a replica answering that many admission requests at
once. Latency is from submit to the durable answer. After the run, the indexes every writer was given
must be exactly 0..n-1 (gap-free, none given twice) and the log must verify.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import AuditLog, load_signer, load_verifier

ENTRY_FACTORY: Any = None  # set by bench/audit.py: i -> entry


@dataclass(frozen=True)
class WriterRun:
    label: str
    writers: int
    appends: int
    rate: float  # durable appends/s, all writers together
    p50_ms: float
    p99_ms: float
    batches: int
    cpu_us: float  # CPU time of the writer processes per append (the server's is not counted)


def _writer(
    target: str,
    key: Path,
    count: int,
    inflight: int,
    batch: int,
    offset: int,
    start: Any,
    out: Any,
    factory: Any,
) -> None:
    latencies: list[float] = []
    indexes: list[int] = []
    entries = [factory(offset + i) for i in range(count)]
    with AuditLog.open(target, signer=load_signer(key), max_batch=batch) as log:
        start.wait()
        began, cpu = time.perf_counter(), time.process_time()
        window: deque[tuple[float, Future[int]]] = deque()
        submitted = 0
        while submitted < count or window:
            while submitted < count and len(window) < inflight:
                window.append((time.perf_counter(), log.submit(entries[submitted])))
                submitted += 1
            sent, future = window.popleft()
            indexes.append(future.result())
            latencies.append(time.perf_counter() - sent)
        ended, cpu = time.perf_counter(), time.process_time() - cpu
    out.put((began, ended, latencies, indexes, cpu))


def run_writers(
    label: str, target: str, key: Path, vkey: Path, writers: int, count: int, inflight: int, batch: int
) -> WriterRun:
    """``writers`` processes append ``count`` entries each to ``target``; checks the log is gap-free."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    procs = [
        context.Process(
            target=_writer, args=(target, key, count, inflight, batch, n * count, start, out, ENTRY_FACTORY)
        )
        for n in range(writers)
    ]
    for proc in procs:
        proc.start()
    with AuditLog.open(target) as log:
        before = log.store.state()[1]
    time.sleep(1.0)  # let every writer open the log (and import) before the clock starts
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"{label}: a writer failed (exit {proc.exitcode})")
    began = min(r[0] for r in results)
    ended = max(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    indexes = sorted(x for r in results for x in r[3])
    total = writers * count
    if indexes != list(range(before, before + total)):
        raise SystemExit(f"{label}: the indexes given are not gap-free")
    with AuditLog.open(target) as log:
        head, stored = log.store.state()
        batches = len(log.store.checkpoints())
        report = log.verify(load_verifier(vkey))
    if not report.ok or head.size != stored or stored != before + total:
        raise SystemExit(f"{label}: the log does not verify after the run: {report}")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return WriterRun(
        label,
        writers,
        total,
        total / (ended - began),
        statistics.median(latencies) * 1000,
        p99 * 1000,
        batches - 1,
        sum(r[4] for r in results) / total * 1e6,
    )


class FreshDatabase:
    """A database of its own on the PostgreSQL server of ``dsn`` for one run, dropped afterwards."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._admin = dsn
        self.name = "bench_audit_" + uuid.uuid4().hex[:12]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        params = conninfo_to_dict(dsn)
        params["dbname"] = self.name
        self.dsn = make_conninfo(**params)
        if not self.dsn.startswith("postgresql://"):
            self.dsn = _url(params)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _url(params: dict[str, Any]) -> str:
    """``open_store`` opens PostgreSQL for a URL: the parameters as one."""
    from urllib.parse import quote

    user = quote(str(params.get("user", "")), safe="")
    password = params.get("password")
    auth = user + (":" + quote(str(password), safe="") if password else "")
    host = params.get("host", "localhost")
    port = params.get("port", 5432)
    extra = "&".join(
        f"{k}={quote(str(v), safe='')}"
        for k, v in params.items()
        if k not in {"user", "password", "host", "port", "dbname"}
    )
    return f"postgresql://{auth}@{host}:{port}/{params['dbname']}" + ("?" + extra if extra else "")


def print_runs(runs: list[WriterRun]) -> None:
    base = runs[0].rate
    for r in runs:
        print(
            f"  {r.label:31s}: {r.rate:12,.0f} appends/s  x{r.rate / base:5.2f}  "
            f"p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  "
            f"writer CPU {r.cpu_us:4.0f} us/append  ({r.appends} entries, {r.batches} batches)"
        )
