"""Benchmark of the auditors' console on a large log: how long a page of decisions takes to answer.

    python bench/console.py [--entries 1000000] [--dir DIR]

Builds a SQLite log of --entries decisions (the store's own append, in large batches), then times the
console's data routes through the app as a client would call them: the newest page, a selective
filter, a filter that matches nothing (the page stops at its scan budget), a page deep in the log by
cursor, one decision, and the summaries. A benchmark, not a test: figures depend on the disk and CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import AuditLog, canonical
from audit.api import create_app
from audit.entry import index_fields
from audit.merkle import leaf_hash
from audit.stores import Record
from audit.stores.sqlite import SQLiteStore
from tests.consoledata import decision

ROUTES = (
    ("newest page", "/console/data/decisions"),
    ("denied in team-b", "/console/data/decisions?verdict=denied&namespace=team-b"),
    ("no match (budget)", "/console/data/decisions?namespace=nowhere"),
    ("page by cursor", "/console/data/decisions?before=500000&verdict=warned"),
    ("policy filter", "/console/data/decisions?policy=model-approved-source&user=alice@team-b"),
    ("one decision", "/console/data/decisions/123456"),
    ("policies, 30 days", "/console/data/policies?since=2026-09-01&until=2026-10-01"),
    ("policies, a year", "/console/data/policies?since=2038-07-01&until=2039-07-01"),
    ("a day, 10 years in", "/console/data/decisions?since=2036-09-01&until=2036-09-02&verdict=denied"),
)


def build(path: Path, count: int) -> None:
    store = SQLiteStore(str(path))
    store.meta("origin", "bench.example/audit")
    batch: list[Record] = []
    for i in range(count):
        data = canonical(decision(i))
        batch.append(Record(data, leaf_hash(data), index_fields(decision(i))))
        if len(batch) == 20_000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    where = args.dir or Path(tempfile.mkdtemp(prefix="bench-console-"))
    db = where / "audit.db"
    if not db.exists():
        started = time.perf_counter()
        build(db, args.entries)
        print(f"built {args.entries} entries in {time.perf_counter() - started:.1f} s ({db})")
    (where / "tokens").write_text("bench\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    log = AuditLog.open(db)
    app = create_app(log, where / "tokens")
    app.state.console.limit.capacity = 1e9
    with TestClient(app) as client:
        for name, url in ROUTES:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                response = client.get(url, headers={"Authorization": "Bearer bench"})
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (url, response.status_code, response.text[:300])
            print(f"{name:20} median {sorted(times)[2] * 1000:8.1f} ms   {url}")
    log.close()


if __name__ == "__main__":
    main()
