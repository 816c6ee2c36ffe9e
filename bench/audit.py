"""Benchmark of the audit log: durable appends/s with group commit against the ceiling, and verification.

    python bench/audit.py [--appends 20000] [--entries 1000000] [--batch 256] [--dir DIR] [--jobs N]
                          [--postgres DSN [--writers 3] [--writer-appends 6000] [--inflight 256]]

Prints (1) durable appends/s on SQLite with group commit (every append waits for its fsync'd commit),
(2) the ceiling measured in the same run: canonicalise + hash + one signature per batch, no storage,
(3) full verification (re-hash every entry, check every checkpoint) of --entries entries, and the time
to build and check one inclusion proof in that log (and, with --jobs, the same verification in N
processes). With --postgres, (4) durable appends/s, p50 and p99 latency with --writers writer processes
on one PostgreSQL log, against one writer on it and one on SQLite, measured alike in the same run;
every run must leave a gap-free log that verifies. The PostgreSQL runs use a database of their own,
created on that server and dropped afterwards.
A benchmark, not a test: figures depend on the disk and CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # else `import audit` finds this file

import audit_writers

from audit import AuditLog, canonical, keygen, load_signer, load_verifier, make_entry, verify_proof
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import index_fields
from audit.merkle import CompactRange, leaf_hash
from audit.stores import Record
from audit.stores.sqlite import SQLiteStore

RESULTS = [
    {"policy": "require-gpu-limits", "action": "deny", "outcome": "pass", "message": ""},
    {"policy": "approved-registries", "action": "deny", "outcome": "fail", "message": "image not allowed"},
    {"policy": "model-provenance", "action": "warn", "outcome": "pass", "message": ""},
]


def entry(i: int) -> dict[str, Any]:
    return make_entry(
        time=datetime.now(UTC),
        source="admission",
        uid=f"7f3c9a2e-{i:012d}",
        operation="CREATE",
        resource={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "namespace": f"team-{i % 7}",
            "name": f"w{i}",
        },
        verdict="denied" if i % 5 == 0 else "allowed",
        user="system:serviceaccount:ci:deployer",
        groups=["system:serviceaccounts", "system:authenticated"],
        policy_set_digest="sha256:" + "3f" * 32,
        results=RESULTS,
    )


def bench_appends(work: Path, count: int, batch: int) -> tuple[float, float, int]:
    keys = keygen("bench.example/audit", work / "keys")
    signer = load_signer(keys.key)
    entries = [entry(i) for i in range(count)]
    log = AuditLog.open(work / "appends.db", signer=signer, max_batch=batch)
    start = time.perf_counter()
    futures = [log.submit(e) for e in entries]  # many concurrent callers, each blocking on its future
    for future in futures:
        future.result()
    durable = count / (time.perf_counter() - start)
    log.close()
    with AuditLog.open(work / "appends.db") as log:
        batches = len(log.store.checkpoints()) - 1  # minus the empty tree's checkpoint
    # The ceiling: the same work without storage, one signature per batch of the same mean size.
    per_batch = max(1, count // max(1, batches))
    compact = CompactRange()
    start = time.perf_counter()
    for offset in range(0, count, per_batch):
        for e in entries[offset : offset + per_batch]:
            data = canonical(e)
            index_fields(e)
            compact.append(leaf_hash(data))
        sign_checkpoint(Checkpoint(signer.name, compact.size, compact.root()), signer)
    ceiling = count / (time.perf_counter() - start)
    return durable, ceiling, batches


def bench_verify(work: Path, count: int, jobs: int) -> dict[str, float]:
    keys = keygen("bench.example/verify", work / "vkeys")
    signer = load_signer(keys.key)
    template = entry(0)
    store = SQLiteStore(str(work / "verify.db"))
    with AuditLog.open(store, signer=signer) as log:
        start = time.perf_counter()
        chunk = 10_000
        for offset in range(0, count, chunk):
            records = []
            for i in range(offset, min(count, offset + chunk)):
                e = dict(template, uid=f"7f3c9a2e-{i:012d}")
                data = canonical(e)
                records.append(Record(data, leaf_hash(data), index_fields(e)))
            store.append(records)
            log.sign_pending()
        build = time.perf_counter() - start
    verifier = load_verifier(keys.vkey)
    out: dict[str, float] = {"build": count / build}
    with AuditLog.open(work / "verify.db") as log:
        start, cpu = time.perf_counter(), time.process_time()
        report = log.verify(verifier)
        out["seconds"] = time.perf_counter() - start
        out["cpu"] = time.process_time() - cpu  # this process only: one core's work, whatever the load
        if not report.ok or report.entries != count:
            raise SystemExit(f"verification failed: {report}")
        if jobs > 1:
            start = time.perf_counter()
            parallel = log.verify(verifier, jobs=jobs)
            out["parallel"] = time.perf_counter() - start
            if parallel != report:
                raise SystemExit(f"verification with --jobs {jobs} differs: {parallel}")
        start = time.perf_counter()
        for index in range(0, count, max(1, count // 20)):
            verify_proof(log.prove(index), verifier)
        out["proof"] = (time.perf_counter() - start) / len(range(0, count, max(1, count // 20)))
    return out


def bench_postgres(work: Path, dsn: str, writers: int, count: int, inflight: int, batch: int) -> None:
    audit_writers.ENTRY_FACTORY = entry
    keys = keygen("bench.example/writers", work / "wkeys")
    runs = [
        audit_writers.run_writers(
            "SQLite, 1 writer", str(work / "writers.db"), keys.key, keys.vkey, 1, count, inflight, batch
        )
    ]
    for n in sorted({1, writers}):
        fresh = audit_writers.FreshDatabase(dsn)
        try:
            label = f"PostgreSQL, {n} writer" + ("s" if n > 1 else "")
            runs.append(
                audit_writers.run_writers(label, fresh.dsn, keys.key, keys.vkey, n, count, inflight, batch)
            )
        finally:
            fresh.drop()
    print(f"writers: {count} appends per writer, {inflight} in flight per writer (max batch {batch})")
    audit_writers.print_runs(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256, help="group commit max batch size")
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temp dir)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the second verification")
    parser.add_argument("--postgres", metavar="DSN", help="also measure writers on this PostgreSQL server")
    parser.add_argument("--writers", type=int, default=3, help="writer processes on PostgreSQL")
    parser.add_argument("--writer-appends", type=int, default=6000, help="appends per writer process")
    parser.add_argument("--inflight", type=int, default=256, help="appends in flight per writer")
    parser.add_argument("--skip-verify", action="store_true", help="only the append measurements")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        durable, ceiling, batches = bench_appends(work, args.appends, args.batch)
        print(f"appends: {args.appends} entries in {batches} batches (max {args.batch})")
        print(f"  durable, SQLite + group commit : {durable:12,.0f} appends/s")
        print(f"  ceiling, no storage            : {ceiling:12,.0f} appends/s")
        print(f"  ratio durable / ceiling        : {durable / ceiling:12.2f}")
        if not args.skip_verify:
            v = bench_verify(work, args.entries, args.jobs)
            rate = args.entries / v["seconds"]
            print(f"verify: {args.entries} entries")
            print(f"  full verification              : {rate:12,.0f} entries/s ({v['seconds']:.1f} s)")
            print(f"  CPU time of that verification  : {v['cpu']:12.1f} s (one core)")
            if "parallel" in v:
                speedup = v["seconds"] / v["parallel"]
                print(
                    f"  with --jobs {args.jobs:<2d}                 : {v['parallel']:12.1f} s (x{speedup:.2f})"
                )
            print(f"  bulk build (for reference)     : {v['build']:12,.0f} entries/s")
            print(f"  ratio verify / ceiling         : {rate / ceiling:12.2f}")
            print(f"  prove + verify-proof, one entry: {v['proof'] * 1000:12.1f} ms")
        if args.postgres:
            bench_postgres(work, args.postgres, args.writers, args.writer_appends, args.inflight, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
