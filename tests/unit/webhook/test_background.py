"""The background scan: a pass over a fake-API cluster, a GovernanceConfig reload, leading, the CPU limit,
bounded metric labels, and admission answered while a pass is held mid-way."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from policyengine.codec import request_from_manifest
from policyengine.engine import Engine
from policyengine.model import Action, Decision, Inventory, Outcome, Result
from policyengine.policyset import load_policy_set
from policyengine.reports.openreports import resource_ref
from tests.unit.webhook.builders import POLICIES, pod, review, write_policies
from tests.unit.webhook.fake_apiserver import FakeAPIServer
from webhook.app import WebhookServices, create_app
from webhook.background import BackgroundScanner, scan_pass
from webhook.cluster import ClusterInventory, api_from_config
from webhook.inventories import StaticInventory
from webhook.policies import LivePolicies
from webhook.prometheus import parse_samples
from webhook.telemetry import build_telemetry
from webhook.violations import CLUSTER, OTHER, ViolationGauge

# An admission-only rule: who asks. A background pass has no userInfo, so it must not run there.
ADMISSION_ONLY = """
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: only-admins-create
  annotations:
    policyengine.io/background: "false"
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
  validations:
    - expression: "request.userInfo.username == 'admin'"
      message: "only admins create pods"
"""

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: teams}
spec:
  gpu:
    resources: [nvidia.com/gpu]
    teams:
      ml: {quota: QUOTA}
"""


def _gpu_pod(fake: FakeAPIServer, name: str, gpus: int) -> None:
    container = {"name": "c", "image": "trainer:1.0", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    fake.put(
        "pods",
        name,
        "ml-train",
        metadata={"labels": {"team": "ml"}},
        spec={"containers": [container]},
        status={"phase": "Running"},
    )


class RecordingSink:
    def __init__(self) -> None:
        self.published: list[tuple[dict[str, list[Decision]], list[Decision]]] = []
        self.changed = threading.Condition()

    def publish(
        self, results_by_namespace: Mapping[str, Sequence[Decision]], cluster_results: Sequence[Decision]
    ) -> None:
        with self.changed:
            self.published.append(
                ({ns: list(ds) for ns, ds in results_by_namespace.items()}, list(cluster_results))
            )
            self.changed.notify_all()

    def wait_for(self, count: int, seconds: float = 30.0) -> tuple[dict[str, list[Decision]], list[Decision]]:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.published) >= count, timeout=seconds)
        assert ok, f"hang guard: pass {count} was not published within {seconds}s"
        return self.published[count - 1]


def _outcomes(by_namespace: Mapping[str, Sequence[Decision]], ns: str, name: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in by_namespace.get(ns, []):
        if d.request.name == name:
            for r in d.results:
                out.setdefault(r.policy, set()).add(r.outcome.value)
    return out


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(fake: FakeAPIServer) -> Iterator[ClusterInventory]:
    fake.put("namespaces", "apps")
    fake.put("namespaces", "ml-train", metadata={"labels": {"policyengine.io/team": "ml"}})
    fake.put("pods", "web", "apps", metadata={"labels": {"team": "a"}}, spec=pod()["spec"])
    fake.put("pods", "latest", "apps", spec=pod(image="nginx:latest")["spec"])
    _gpu_pod(fake, "train-a", 2)
    _gpu_pod(fake, "train-b", 2)
    inventory = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inventory.start()
    deadline = time.monotonic() + 30
    while not inventory.status()["ready"]:
        assert time.monotonic() < deadline, "hang guard: the inventory did not sync"
        time.sleep(0.02)
    yield inventory
    inventory.stop()


def _policies(tmp_path: Path, quota: int) -> tuple[LivePolicies, Path]:
    directory = tmp_path / "policies"
    write_policies(directory, POLICIES + ADMISSION_ONLY)
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(CONFIG).replace("QUOTA", str(quota)), encoding="utf-8")

    def load() -> Engine:
        return Engine(load_policy_set([str(directory)], config_paths=[str(config)], include_bundled=True))

    # The bundled packs judge what this config gives them; the others are served unevaluated.
    policies = LivePolicies(load, [str(directory), str(config)], allow_unconfigured=True)
    policies.serve(load())
    return policies, config


@pytest.fixture
def scanner_parts(
    tmp_path: Path, cluster: ClusterInventory
) -> Iterator[tuple[BackgroundScanner, RecordingSink, Path]]:
    policies, config = _policies(tmp_path, quota=16)
    sink = RecordingSink()
    scanner = BackgroundScanner(
        policies, cluster, build_telemetry({}), interval=3600, cpu_share=1.0, sink=sink
    )
    scanner.start()
    yield scanner, sink, config
    scanner.stop()


def test_a_background_pass_over_the_cluster_reports_the_violating_workloads(
    scanner_parts: tuple[BackgroundScanner, RecordingSink, Path],
) -> None:
    scanner, sink, _ = scanner_parts
    by_namespace, cluster_results = sink.wait_for(1)
    assert _outcomes(by_namespace, "apps", "latest")["no-latest-tag"] == {"fail"}
    assert _outcomes(by_namespace, "apps", "web")["no-latest-tag"] == {"pass"}
    assert _outcomes(by_namespace, "ml-train", "train-a")["gpu-team-quota"] == {"pass"}  # 4 in all <= 16
    # Judged as CREATE requests with no oldObject and no user; the admission-only policy opted out.
    decisions = [d for ds in by_namespace.values() for d in ds] + cluster_results
    assert {d.request.operation for d in decisions} == {"CREATE"}
    assert all(d.request.old_object is None and d.request.user_info.username == "" for d in decisions)
    assert all(r.policy != "only-admins-create" for d in decisions for r in d.results)
    assert {resource_ref(d)["uid"] for d in by_namespace["apps"]} >= {"pods-web", "pods-latest"}
    metrics = list(parse_samples(scanner.telemetry.prometheus_text()))
    violations = {
        (s[1]["policy"], s[1]["namespace"]): s[2] for s in metrics if s[0] == "policyengine_violations"
    }
    assert violations[("no-latest-tag", "apps")] == 1.0
    objects = [s[2] for s in metrics if s[0] == "policyengine_background_objects"]
    snapshot = scanner.inventory.current()
    assert objects == [float(len(snapshot.namespaces) + len(snapshot.objects))]
    assert [s[0] for s in metrics if s[0] == "policyengine_background_scan_seconds"]


def test_lowering_a_team_quota_reports_its_running_workloads_at_the_next_pass(
    scanner_parts: tuple[BackgroundScanner, RecordingSink, Path],
) -> None:
    scanner, sink, config = scanner_parts
    sink.wait_for(1)
    # The two running pods hold 4 GPUs: each is judged against the other's 2 plus its own 2, not twice.
    for count, quota in ((2, 4), (3, 3)):
        config.write_text(textwrap.dedent(CONFIG).replace("QUOTA", str(quota)), encoding="utf-8")
        assert scanner.policies.reload().ok  # the reload alone starts a pass: the interval is an hour
        by_namespace, _ = sink.wait_for(count)
        for name in ("train-a", "train-b"):
            outcome = "pass" if quota == 4 else "fail"
            assert outcome in _outcomes(by_namespace, "ml-train", name)["gpu-team-quota"]
        messages = [
            r.message
            for d in by_namespace["ml-train"]
            for r in d.results
            if r.policy == "gpu-team-quota" and r.outcome.value == "fail"
        ]
        assert all("uses 2 GPUs and Pod" in m and "4 is over the quota of 3" in m for m in messages)
        assert len(messages) == (2 if quota == 3 else 0)
    assert _outcomes(by_namespace, "apps", "latest")["no-latest-tag"] == {"fail"}


def test_a_replica_that_does_not_lead_keeps_metrics_and_publishes_nothing(
    tmp_path: Path, cluster: ClusterInventory
) -> None:
    policies, _ = _policies(tmp_path, quota=16)
    sink = RecordingSink()
    scanner = BackgroundScanner(
        policies, cluster, build_telemetry({}), interval=3600, sink=sink, leads=lambda: False
    )
    engine = policies.engine
    assert engine is not None
    done = scanner.run_pass(engine)
    assert done is not None and done.by_namespace["apps"]
    assert sink.published == []
    assert any(s[0] == "policyengine_violations" for s in parse_samples(scanner.telemetry.prometheus_text()))


def test_the_annotation_opts_a_policy_out_of_background_scans(tmp_path: Path) -> None:
    policies, _ = _policies(tmp_path, quota=16)
    engine = policies.engine
    assert engine is not None
    switches = {p.name: p.background for p in engine.policy_set.policies}
    assert switches["only-admins-create"] is False
    assert switches["no-latest-tag"] is True


def test_the_scan_is_paced_by_the_cpu_limit(tmp_path: Path) -> None:
    from webhook.cpulimit import CpuLimiter

    directory = tmp_path / "p"
    write_policies(directory)
    engine = Engine(load_policy_set([str(directory)], include_bundled=False))
    objects = tuple({**pod(f"p{i}"), "metadata": {"name": f"p{i}", "namespace": "apps"}} for i in range(5))
    ticks = iter(x * 0.01 for x in range(100))  # each object costs 10 ms of CPU
    pauses: list[float] = []
    limiter = CpuLimiter(0.2, sleep=pauses.append, cpu_clock=lambda: next(ticks))
    done = scan_pass(engine, objects, Inventory(objects=objects), now=_now(), limiter=limiter)
    assert done is not None and done.objects == 5
    assert pauses == pytest.approx([0.04] * 5)  # 10 ms of work at a 20 % share: 40 ms of pause each


def test_hostile_a_hundred_thousand_namespaces_do_not_blow_up_metric_cardinality() -> None:
    def failing(ns: str) -> Decision:
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}}
        request = request_from_manifest(obj, operation="CREATE")
        result = Result(policy="no-latest-tag", action=Action.DENY, outcome=Outcome.FAIL, message="m")
        return Decision(request=request, results=(result,), allowed=False)

    by_namespace = {f"ns-{i:06d}": [failing(f"ns-{i:06d}")] for i in range(100_000)}
    by_namespace["ns-000042"].append(failing("ns-000042"))  # the namespace with the most keeps its own
    telemetry = build_telemetry({})
    gauge = ViolationGauge(max_namespaces=50)
    telemetry.gauges["policyengine_violations"] = gauge.samples
    gauge.update(by_namespace, [failing("")])
    series = [s for s in parse_samples(telemetry.prometheus_text()) if s[0] == "policyengine_violations"]
    labels = {s[1]["namespace"]: s[2] for s in series}
    assert len(series) == 52  # 50 namespaces, _other and _cluster: 1 policy x 1 action x (cap + 2)
    assert labels["ns-000042"] == 2.0 and labels[CLUSTER] == 1.0
    assert sum(labels.values()) == 100_002  # nothing is lost: the rest is summed under _other
    assert labels[OTHER] == 100_000 - 49 - 1 + 0.0


def test_admission_answers_while_a_scan_is_held_mid_pass(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    write_policies(directory)

    def load() -> Engine:
        return Engine(load_policy_set([str(directory)], include_bundled=False))

    policies = LivePolicies(load, [str(directory)])
    policies.serve(load())
    objects = tuple(pod(f"p{i}", image="nginx:latest") for i in range(3))
    inventory = StaticInventory(Inventory(objects=objects))
    held, release = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        if n == 1:
            held.set()
            assert release.wait(60), "hang guard: the test never released the scan"

    sink = RecordingSink()
    telemetry = build_telemetry({})
    scanner = BackgroundScanner(
        policies, inventory, telemetry, interval=3600, sink=sink, on_object=hold, cpu_share=1.0
    )
    services = WebhookServices(
        policies=policies, inventory=inventory, telemetry=telemetry, background=scanner
    )
    with TestClient(create_app(services)) as client:
        assert held.wait(30), "hang guard: the background pass did not start"
        response = client.post("/validate", json=review(pod(image="nginx:latest")))
        assert response.status_code == 200 and response.json()["response"]["allowed"] is False
        assert sink.published == []  # the pass is still held after the first object
        release.set()
        by_namespace, _ = sink.wait_for(1)
        assert len(by_namespace["apps"]) == 3


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
