"""Benchmark of the audit log: durable appends/s with group commit against the ceiling, and verification.

    python bench/audit.py [--appends 20000] [--entries 1000000] [--batch 256] [--dir DIR]

Prints (1) durable appends/s on SQLite with group commit (every append waits for its fsync'd commit),
(2) the ceiling measured in the same run: canonicalise + hash + one signature per batch, no storage,
(3) full verification (re-hash every entry, check every checkpoint) of --entries entries, and the time
to build and check one inclusion proof in that log.
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


def bench_verify(work: Path, count: int) -> tuple[float, float, float]:
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
    with AuditLog.open(work / "verify.db") as log:
        start = time.perf_counter()
        report = log.verify(verifier)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        for index in range(0, count, max(1, count // 20)):
            verify_proof(log.prove(index), verifier)
        per_proof = (time.perf_counter() - start) / len(range(0, count, max(1, count // 20)))
    if not report.ok or report.entries != count:
        raise SystemExit(f"verification failed: {report}")
    return count / elapsed, count / build, per_proof


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256, help="group commit max batch size")
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        durable, ceiling, batches = bench_appends(work, args.appends, args.batch)
        print(f"appends: {args.appends} entries in {batches} batches (max {args.batch})")
        print(f"  durable, SQLite + group commit : {durable:12,.0f} appends/s")
        print(f"  ceiling, no storage            : {ceiling:12,.0f} appends/s")
        print(f"  ratio durable / ceiling        : {durable / ceiling:12.2f}")
        rate, build, per_proof = bench_verify(work, args.entries)
        print(f"verify: {args.entries} entries")
        print(f"  full verification              : {rate:12,.0f} entries/s ({args.entries / rate:.1f} s)")
        print(f"  bulk build (for reference)     : {build:12,.0f} entries/s")
        print(f"  ratio verify / ceiling         : {rate / ceiling:12.2f}")
        print(f"  prove + verify-proof, one entry: {per_proof * 1000:12.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
