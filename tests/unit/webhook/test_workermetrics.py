"""The /metrics view shared by the workers of one server (webhook.workermetrics), on real files: counters
and histograms summed over every snapshot, dead workers' kept and folded, gauges merged over the live
ones by what they mean, and a bounded, hostile-proof read of the directory."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from webhook import workermetrics
from webhook.prometheus import parse_samples
from webhook.telemetry import Telemetry, build_telemetry
from webhook.workermetrics import RETIRED, SharedMetrics

REQUESTS = "policyengine_admission_requests_total"


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def worker(directory: Path, pid: int | None = None) -> tuple[Telemetry, SharedMetrics]:
    telemetry = build_telemetry({})
    shared = SharedMetrics(directory, telemetry.families, pid=pid)
    telemetry.exposition = shared.render
    return telemetry, shared


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels.items())): v for n, labels, v in parse_samples(text) if n == name}


def total(text: str, name: str = REQUESTS) -> float:
    return sum(samples(text, name).values())


def test_counters_and_histograms_are_summed_over_the_workers(tmp_path: Path) -> None:
    one, _ = worker(tmp_path)
    two, _ = worker(tmp_path, pid=os.getppid())  # another live process
    one.add("requests", 3, verdict="allowed")
    two.add("requests", 4, verdict="allowed")
    two.add("requests", 1, verdict="denied")
    one.observe("request_duration", 0.002)
    two.observe("request_duration", 0.2)
    two.prometheus_text()  # writes its snapshot
    text = one.prometheus_text()
    assert samples(text, REQUESTS) == {(("verdict", "allowed"),): 7, (("verdict", "denied"),): 1}
    assert total(text, "policyengine_request_duration_seconds_count") == 2
    buckets = samples(text, "policyengine_request_duration_seconds_bucket")
    assert buckets[(("le", "0.0025"),)] == 1 and buckets[(("le", "0.25"),)] == 2
    assert buckets[(("le", "+Inf"),)] == 2
    assert two.prometheus_text() == text  # the same view from either worker


def test_gauges_merge_by_meaning_and_count_live_workers_only(tmp_path: Path) -> None:
    one, _ = worker(tmp_path)
    two, _ = worker(tmp_path, pid=os.getppid())
    gone, _ = worker(tmp_path, pid=dead_pid())
    for telemetry, in_flight, healthy, loaded in ((one, 2, 1, 5), (two, 3, 0, 7), (gone, 40, 0, 99)):
        telemetry.add("in_flight", in_flight)
        telemetry.gauges["policyengine_audit_healthy"] = lambda h=healthy: [(h, {})]
        telemetry.gauges["policyengine_policies_loaded"] = lambda n=loaded: [(n, {})]
        expiry = 86400.0 * loaded  # days left on the certificate this worker serves
        telemetry.gauges["policyengine_tls_certificate_expiry_seconds"] = lambda e=expiry: [(e, {})]
        telemetry.add("requests", 1, verdict="allowed")
        telemetry.prometheus_text()
    text = one.prometheus_text()
    assert total(text, "policyengine_requests_in_flight") == 5  # summed; the dead worker's 40 is gone
    assert total(text, "policyengine_audit_healthy") == 0  # one worker out of service shows
    assert total(text, "policyengine_policies_loaded") == 7  # the larger set of the live ones
    assert total(text, "policyengine_tls_certificate_expiry_seconds") == 5 * 86400.0  # the soonest
    assert total(text) == 3  # the dead worker's admissions still count


def test_a_dead_workers_snapshot_is_folded_and_counters_never_go_back(tmp_path: Path) -> None:
    live, shared = worker(tmp_path)
    live.add("requests", 2, verdict="allowed")
    for _ in range(2):  # two workers died, one after the other
        gone, _ = worker(tmp_path, pid=dead_pid())
        gone.add("requests", 5, verdict="denied")
        gone.prometheus_text()
        before = total(live.prometheus_text())
        shared.fold()
        assert total(live.prometheus_text()) == before
        assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted([RETIRED, shared.path.name])
    assert total(live.prometheus_text()) == 12
    assert "policyengine_requests_in_flight" not in json.loads((tmp_path / RETIRED).read_text())["families"]


def test_a_fold_interrupted_before_removing_the_files_counts_nothing_twice(tmp_path: Path) -> None:
    live, shared = worker(tmp_path)
    gone, gone_shared = worker(tmp_path, pid=dead_pid())
    gone.add("requests", 5, verdict="denied")
    gone.prometheus_text()
    kept = gone_shared.path.read_bytes()
    shared.fold()
    gone_shared.path.write_bytes(kept)  # as if the fold stopped after writing retired.json
    assert total(live.prometheus_text()) == 5
    shared.fold()
    assert not gone_shared.path.exists() and total(live.prometheus_text()) == 5


def test_a_worker_given_a_dead_workers_pid_does_not_overwrite_its_counters(tmp_path: Path) -> None:
    pid = dead_pid()
    gone, _ = worker(tmp_path, pid=pid)
    gone.add("requests", 5, verdict="denied")
    gone.prometheus_text()
    reborn, shared = worker(tmp_path, pid=pid)  # the pid given again: its file is another
    reborn.add("requests", 1, verdict="allowed")
    assert total(reborn.prometheus_text()) == 6
    shared.fold()  # the old file is a dead worker's even though its pid runs again
    assert total(reborn.prometheus_text()) == 6 and len(list(tmp_path.glob("worker-*.json"))) == 1


HOSTILE: list[tuple[str, Any]] = [
    ("not json", b"{\"pid\": 1, \"families\": ["),
    ("not an object", b"[1, 2]"),
    ("pid", {"pid": "x", "families": []}),
    ("kind", {"pid": 1, "families": [{"name": "a", "description": "", "kind": "summary", "points": []}]}),
    ("labels", {"pid": 1, "families": [{"name": REQUESTS, "description": "", "kind": "counter",
                                        "points": [{"labels": {"a": 1}, "value": 1}]}]}),
    ("value", {"pid": 1, "families": [{"name": "a", "description": "", "kind": "counter",
                                       "points": [{"labels": {}, "value": "9"}]}]}),
    ("buckets", {"pid": 1, "families": [{"name": "h", "description": "", "kind": "histogram",
                                         "points": [{"labels": {}, "bounds": [1.0], "buckets": [1],
                                                     "sum": 1, "count": 1}]}]}),
    ("negative count", {"pid": 1, "families": [{"name": "h", "description": "", "kind": "histogram",
                                                "points": [{"labels": {}, "bounds": [], "buckets": [-1],
                                                            "sum": 1, "count": -1}]}]}),
    ("deep", b"[" * 100_000 + b"]" * 100_000),
    ("folded", {"pid": 1, "families": [], "folded": "x"}),
]  # fmt: skip


@pytest.mark.parametrize(("problem", "content"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_malformed_snapshot_is_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, problem: str, content: Any
) -> None:
    live, _ = worker(tmp_path)
    live.add("requests", 2, verdict="allowed")
    bad = tmp_path / f"worker-{os.getppid()}-{'0' * 16}.json"
    bad.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    (tmp_path / RETIRED).write_bytes(bad.read_bytes())
    with caplog.at_level(logging.WARNING, logger="policyengine"):
        assert total(live.prometheus_text()) == 2
        assert total(live.prometheus_text()) == 2
    skipped = [r for r in caplog.records if r.getMessage() == "metrics snapshot skipped"]
    assert sorted(r.__dict__["snapshot"] for r in skipped) == sorted([bad.name, RETIRED])


def test_what_is_read_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workermetrics, "MAX_SNAPSHOTS", 3)
    monkeypatch.setattr(workermetrics, "MAX_SNAPSHOT_BYTES", 64 * 1024)
    live, _ = worker(tmp_path, pid=9_999_999)  # its own file sorts after the others
    one = {"name": "policyengine_admission_requests", "description": "", "kind": "counter",
           "points": [{"labels": {"verdict": "allowed"}, "value": 1}]}  # fmt: skip
    for i in range(1, 6):
        name = f"worker-1-{i:016x}.json"
        (tmp_path / name).write_text(json.dumps({"pid": os.getppid(), "families": [one]}))
    assert total(live.prometheus_text()) == 3  # three files of five read (the count is logged)
    (tmp_path / f"worker-1-{0:016x}.json").write_text(" " * (64 * 1024 + 1))  # sorts first; too large
    assert total(live.prometheus_text()) == 2


def test_a_file_of_another_name_is_ignored(tmp_path: Path) -> None:
    live, _ = worker(tmp_path)
    live.add("requests", 1, verdict="allowed")
    (tmp_path / "worker-1.json").write_text(json.dumps({"pid": 1, "families": []}))
    (tmp_path / "notes.txt").write_text("x")
    assert total(live.prometheus_text()) == 1


def test_stop_writes_the_last_snapshot(tmp_path: Path) -> None:
    live, _ = worker(tmp_path)
    gone, shared = worker(tmp_path, pid=os.getppid())
    shared.start()
    gone.add("requests", 4, verdict="allowed")
    shared.stop()
    assert total(live.prometheus_text()) == 4
