"""serve --kube --background-interval against the fake API server: each pass reads the CRD-backed AI
workloads (TrainJobs, InferenceServices) the informers do not hold, judges them against the informers'
inventory, and the elected replica writes the OpenReports (a Report per namespace, stale ones deleted);
a replica that does not lead writes nothing, and a listing failure keeps the previous reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policyengine.engine import Engine
from policyengine.policyset import load_policy_set
from tests.helpers import write
from tests.unit.scan.test_scan_cluster import KSERVE, POLICIES, TRAINER, crd_schemas, workload
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig
from webhook.background import BackgroundScanner
from webhook.cluster import ClusterInventory, api_from_config
from webhook.leader import LeaderElector
from webhook.policies import LivePolicies
from webhook.server import background_from
from webhook.settings import Settings
from webhook.telemetry import build_telemetry

REPORTS = ("openreports.io", "v1alpha1", "reports")
NAMESPACE = "policyengine"


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    for kind in (KSERVE, TRAINER):
        server.serve_kind(*kind)
    server.serve_openreports()
    for namespace in ("serving", "train", "apps"):
        server.put("namespaces", namespace)
    yield server
    server.stop()


@pytest.fixture
def cluster(fake: FakeAPIServer) -> Iterator[ClusterInventory]:
    inventory = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inventory.start()
    deadline = time.monotonic() + 30
    while not inventory.status()["ready"]:
        assert time.monotonic() < deadline, "hang guard: the inventory did not sync"
        time.sleep(0.02)
    yield inventory
    inventory.stop()


def _scanner(
    tmp_path: Path, fake: FakeAPIServer, cluster: ClusterInventory, monkeypatch: pytest.MonkeyPatch
) -> tuple[BackgroundScanner, LeaderElector]:
    directory = tmp_path / "policies"
    write(directory / "p.yaml", POLICIES)

    def load() -> Engine:
        return Engine(load_policy_set([str(directory)], include_bundled=False))

    policies = LivePolicies(load, [str(directory)])
    policies.serve(load())
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{fake.port}")
    settings = Settings(kube=True, kubeconfig=str(config), background_interval=3600.0, background_cpu=1.0)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    scanner, leader = background_from(settings, policies, cluster, build_telemetry({}))
    assert scanner is not None and leader is not None
    return scanner, leader


def _pass(scanner: BackgroundScanner) -> Any:
    engine = scanner.policies.engine
    assert engine is not None
    return scanner.run_pass(engine)


def _stored(fake: FakeAPIServer) -> dict[str, dict[str, str]]:
    """namespace -> {workload name: result} of the ai-owner-label policy, as the stored Reports say."""
    out: dict[str, dict[str, str]] = {}
    for (namespace, _), report in fake.custom[REPORTS].items():
        results = [r for r in report["results"] if r["policy"] == "ai-owner-label"]
        out[namespace] = {r["resources"][0]["name"]: r["result"] for r in results}
    return out


def test_the_leader_writes_a_report_per_namespace_holding_the_crd_workloads(
    tmp_path: Path,
    fake: FakeAPIServer,
    cluster: ClusterInventory,
    monkeypatch: pytest.MonkeyPatch,
    shared: Path,
) -> None:
    fake.put_object("inferenceservices", workload(KSERVE, "chat", "serving", "ml"))
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    scanner, leader = _scanner(tmp_path, fake, cluster, monkeypatch)
    assert leader.step() and leader.is_leader

    done = _pass(scanner)

    assert done is not None
    assert _stored(fake) == {"serving": {"chat": "pass", "rogue": "fail"}, "train": {"finetune": "fail"}}
    schemas = crd_schemas(shared)
    for report in fake.written:
        jsonschema.Draft7Validator(schemas[report["kind"]]).validate(report)
    # The workloads were listed in pages through discovery; what the informers hold was not listed again.
    assert any(line.startswith("inferenceservices ") for line in fake.custom_lists)
    assert any(line.startswith("trainjobs ") for line in fake.custom_lists)

    # A deleted workload's results leave the next pass's reports; a namespace left with none loses its Report.
    fake.delete_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    fake.delete_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    assert _pass(scanner) is not None
    assert _stored(fake) == {"serving": {"chat": "pass"}}


def test_a_replica_that_does_not_lead_writes_no_report(
    tmp_path: Path, fake: FakeAPIServer, cluster: ClusterInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    scanner, leader = _scanner(tmp_path, fake, cluster, monkeypatch)
    from webhook.leader import KubernetesLeaseAPI

    rival_api = KubernetesLeaseAPI(
        api_from_config(host=f"http://127.0.0.1:{fake.port}").api_client, NAMESPACE
    )
    rival = LeaderElector(rival_api, "rival")
    assert rival.step()
    assert not leader.step() and not leader.is_leader

    done = _pass(scanner)

    assert done is not None and done.by_namespace["train"]  # judged (the metrics are kept)...
    assert fake.written == [] and fake.custom[REPORTS] == {}  # ...but nothing written


def test_a_listing_failure_keeps_the_previous_reports(
    tmp_path: Path, fake: FakeAPIServer, cluster: ClusterInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    scanner, leader = _scanner(tmp_path, fake, cluster, monkeypatch)
    assert leader.step()
    first = _pass(scanner)
    assert first is not None
    before = _stored(fake)
    assert before == {"serving": {"rogue": "fail"}, "train": {"finetune": "fail"}}

    fake.forbidden.add("trainjobs")  # the TrainJobs cannot be listed this time
    writes = len(fake.written)
    assert _pass(scanner) is None  # the pass failed, and said so in the log
    assert _stored(fake) == before and len(fake.written) == writes
    assert scanner.last is first  # the metrics still describe the last complete pass

    fake.forbidden.clear()
    assert _pass(scanner) is not None
    assert _stored(fake) == before


def test_without_kube_the_pass_judges_what_the_inventory_holds(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    write(directory / "p.yaml", POLICIES)
    inventory_file = tmp_path / "inventory.yaml"
    write(inventory_file, _yaml_of(workload(TRAINER, "finetune", "train", None)))
    settings = Settings(
        policies=(str(directory),),
        include_bundled=False,
        inventory=str(inventory_file),
        background_interval=3600.0,
    )
    from webhook.server import engine_loader, inventory_source

    policies = LivePolicies(engine_loader(settings), settings.watched)
    policies.serve(engine_loader(settings)())
    scanner, leader = background_from(settings, policies, inventory_source(settings), build_telemetry({}))
    assert scanner is not None and leader is None
    done = _pass(scanner)
    assert done is not None
    assert {d.request.name for d in done.by_namespace["train"]} == {"finetune"}


def _yaml_of(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj)


def test_every_call_of_a_background_pass_is_granted_by_the_rbac(
    tmp_path: Path, fake: FakeAPIServer, cluster: ClusterInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webhook.access import CLUSTER, required
    from webhook.bgcluster import ClusterObjects

    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    scanner, leader = _scanner(tmp_path, fake, cluster, monkeypatch)
    assert leader.step()
    assert _pass(scanner) is not None
    reader = scanner.objects
    assert isinstance(reader, ClusterObjects)
    verbs = {"POST": "create", "PUT": "update", "DELETE": "delete"}
    needed = set()
    for call in reader.rest.requests:
        method, path = call.split(" ", 1)
        parts = path.strip("/").split("/")
        if method == "GET" and (
            (parts[0] == "api" and len(parts) <= 2) or (parts[0] == "apis" and len(parts) <= 3)
        ):
            continue  # discovery: system:discovery lets every authenticated user read it
        group = "" if parts[0] == "api" else parts[1]
        rest_ = parts[2:] if parts[0] == "api" else parts[3:]
        if rest_[0] == "namespaces" and len(rest_) > 2:
            rest_ = rest_[2:]
        resource, named = rest_[0], len(rest_) > 1
        verb = verbs.get(method, "get" if named else "list")
        needed.add((CLUSTER, group, resource, verb))
    assert needed, "the pass made no call"
    assert needed - required() == set(), "the background pass calls what deploy/rbac.yaml does not grant"


def test_hostile_a_server_paging_forever_fails_the_pass_at_the_bound_and_keeps_the_reports(
    tmp_path: Path, fake: FakeAPIServer, cluster: ClusterInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webhook.bgcluster import ClusterObjects

    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    scanner, leader = _scanner(tmp_path, fake, cluster, monkeypatch)
    assert leader.step() and _pass(scanner) is not None
    before, writes = _stored(fake), len(fake.written)
    reader = scanner.objects
    assert isinstance(reader, ClusterObjects)
    reader.max_objects = len(cluster.current().namespaces) + len(cluster.current().objects) + 20
    fake.endless_pages = True
    lists = len(fake.custom_lists)

    assert _pass(scanner) is None
    assert len(fake.custom_lists) - lists <= 22  # one resource paged to the bound, then the pass stopped
    assert _stored(fake) == before and len(fake.written) == writes


def test_the_requests_a_long_running_reader_remembers_are_bounded(fake: FakeAPIServer) -> None:
    from webhook.kubescan import KubeRest, discover

    rest = KubeRest(api_from_config(host=f"http://127.0.0.1:{fake.port}").api_client, keep=3)
    for _ in range(3):
        discover(rest)
    assert len(rest.requests) == 3
