"""Objects per second of a background scan of a 10,000-object inventory, next to ``check`` of the same
objects in the same run.

    python bench/scan.py [--objects 10000] [--runs 3]

Generates the AI-workload corpus of ``bench/gate.py`` (seeded: Deployments and StatefulSets with GPUs,
Jobs, PyTorchJobs, RayClusters, InferenceServices, JobSets, LeaderWorkerSets, TrainJobs, some violating
the bundled packs) as one kubectl-style List, loads it once, then times in-process, median of ``--runs``
(interleaved):

- ``check``: ``gate.check_documents`` with the admission engine (what ``policyengine check`` runs);
- ``scan``: ``scan.scan`` with the background engine (what ``policyengine scan`` and a background pass
  run), on the same documents and inventory.

Both engines are built before timing (a server builds its engine once per policy set).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gate import MAKERS  # noqa: E402  (the corpus of the gate bench)
from policyengine.engine import Engine  # noqa: E402
from policyengine.gate import check_documents  # noqa: E402
from policyengine.inventory import from_documents  # noqa: E402
from policyengine.loader import read_documents  # noqa: E402
from policyengine.policyset import load_policy_set  # noqa: E402
from policyengine.scan import background_engine, scan  # noqa: E402


def inventory(count: int, seed: int = 7) -> dict[str, Any]:
    import random

    rng = random.Random(seed)
    return {"apiVersion": "v1", "kind": "List", "items": [rng.choice(MAKERS)(rng, i) for i in range(count)]}


def seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inventory.json"
        path.write_text(json.dumps(inventory(args.objects)), encoding="utf-8")
        docs = read_documents([str(path)])
    world = from_documents(d.data for d in docs)
    policy_set = load_policy_set(
        [], config_paths=[str(ROOT / "examples" / "config-reference" / "governance.yaml")]
    )
    now = datetime.now(UTC)
    admission, background = Engine(policy_set), background_engine(policy_set)
    check_documents(admission, docs, inventory=world, now=now)  # warm-up of both paths (CEL caches)
    report = scan(background, docs, inventory=world, now=now)  # and the figures' sanity
    failed = sum(1 for c in report.checked if c.denied)
    print(f"inventory: {len(docs)} objects, {failed} with a deny finding; median of {args.runs} runs")
    # Interleaved, so that a machine busy with something else slows both alike.
    samples: dict[str, list[float]] = {"check": [], "scan": []}
    for _ in range(args.runs):
        samples["check"].append(seconds(lambda: check_documents(admission, docs, inventory=world, now=now)))
        samples["scan"].append(seconds(lambda: scan(background, docs, inventory=world, now=now)))
    check_s, scan_s = statistics.median(samples["check"]), statistics.median(samples["scan"])
    print(f"check: {len(docs) / check_s:,.0f} objects/s ({check_s:.2f} s)")
    print(f"scan:  {len(docs) / scan_s:,.0f} objects/s ({scan_s:.2f} s)")
    print(f"scan/check: {check_s / scan_s:.2f}x the throughput of check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
