"""``policyengine scan --kube`` against the fake API server: CRD-backed AI workloads found through
discovery and listed in pages, OpenReports written (valid against the CRDs) and kept current by --apply."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import run_cli, write
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig

POLICIES = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: ai-owner-label
  annotations: {policyengine.io/category: ownership, policyengine.io/severity: high}
spec:
  match:
    kinds:
      - {apiGroups: [serving.kserve.io], kinds: [InferenceService]}
      - {apiGroups: [trainer.kubeflow.org], kinds: [TrainJob]}
      - {apiGroups: [ray.io], kinds: [RayCluster]}
  validations:
    - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
      messageExpression: "object.kind + ' ' + object.metadata.name + ' names no owner'"
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: only-admins-create
  annotations: {policyengine.io/background: "false"}
spec:
  match:
    kinds: [{apiGroups: ["*"], kinds: ["*"]}]
  validations:
    - expression: "request.userInfo.username == 'admin'"
      message: only admins create objects
"""

KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
TRAINER = ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
RAY = ("ray.io", "v1", "rayclusters", "RayCluster")


def workload(kind: tuple[str, str, str, str], name: str, namespace: str, owner: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        meta["labels"] = {"owner": owner}
    return {"apiVersion": f"{kind[0]}/{kind[1]}", "kind": kind[3], "metadata": meta, "spec": {}}


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    for kind in (KSERVE, TRAINER, RAY):
        server.serve_kind(*kind)
    server.serve_openreports()
    server.put("namespaces", "serving")
    server.put("namespaces", "train")
    yield server
    server.stop()


@pytest.fixture
def scan_args(fake: FakeAPIServer, tmp_path: Path) -> list[str]:
    write(tmp_path / "policies" / "p.yaml", POLICIES)
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{fake.port}")
    return ["scan", "--kube", "--kubeconfig", str(config), "--no-default-policies", "--policies",
            str(tmp_path / "policies")]  # fmt: skip


def crd_schemas(shared: Path) -> dict[str, Any]:
    out = {}
    for name in ("openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"):
        crd = yaml.safe_load((shared / "vectors" / "openreports" / name).read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def assert_valid(reports: list[dict[str, Any]], schemas: dict[str, Any]) -> None:
    assert reports, "no report to validate"
    for report in reports:
        jsonschema.Draft7Validator(schemas[report["kind"]]).validate(report)


def by_resource(report: dict[str, Any], policy: str) -> dict[str, str]:
    return {r["resources"][0]["name"]: r["result"] for r in report["results"] if r["policy"] == policy}


def test_a_cluster_scan_reports_compliant_and_violating_ai_workloads(
    fake: FakeAPIServer, scan_args: list[str], tmp_path: Path, shared: Path, capsys: Any, monkeypatch: Any
) -> None:
    fake.put_object("inferenceservices", workload(KSERVE, "chat", "serving", "ml"))
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    fake.put_object("rayclusters", workload(RAY, "tune", "train", "ml"))
    out = tmp_path / "reports.json"

    code, _, err = run_cli([*scan_args, "--format", "openreports", "--output", str(out)], capsys, monkeypatch)

    assert code == 1, err  # a deny violation, as check
    reports = json.loads(out.read_text())["items"]
    assert [(r["kind"], r["metadata"].get("namespace")) for r in reports] == [
        ("Report", "serving"),
        ("Report", "train"),
    ]
    serving, train = reports
    assert by_resource(serving, "ai-owner-label") == {"chat": "pass", "rogue": "fail"}
    assert by_resource(train, "ai-owner-label") == {"finetune": "fail", "tune": "pass"}
    assert serving["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    rogue = next(r for r in serving["results"] if r["result"] == "fail")
    assert rogue["resources"] == [
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "namespace": "serving",
         "name": "rogue", "uid": "inferenceservices-rogue",
         "resourceVersion": rogue["resources"][0]["resourceVersion"]}
    ]  # fmt: skip
    assert rogue["message"] == "InferenceService rogue names no owner"
    assert (rogue["source"], rogue["rule"], rogue["severity"], rogue["category"]) == (
        "policyengine",
        "validations[0]",
        "high",
        "ownership",
    )
    # The admission-only policy (it reads request.userInfo) is not run: a scan has no user.
    assert not any(r["policy"] == "only-admins-create" for rep in reports for r in rep["results"])
    # Custom kinds were read through discovery, a page at a time.
    assert {"inferenceservices limit=500 continue=0", "rayclusters limit=500 continue=0"} <= set(
        fake.custom_lists
    )
    assert_valid(reports, crd_schemas(shared))


def test_apply_writes_reports_and_drops_a_deleted_workloads_results(
    fake: FakeAPIServer, scan_args: list[str], shared: Path, capsys: Any, monkeypatch: Any
) -> None:
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    job = fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    fake.put_object("trainjobs", workload(TRAINER, "other", "train", "ml"))

    code, _, err = run_cli([*scan_args, "--apply"], capsys, monkeypatch)
    assert code == 1, err
    stored = {r["metadata"]["namespace"]: r for r in fake.objects_of("openreports.io", "v1alpha1", "reports")}
    assert set(stored) == {"serving", "train"}
    assert by_resource(stored["train"], "ai-owner-label") == {"finetune": "fail", "other": "pass"}
    assert "reports created 2, updated 0, deleted 0" in err

    fake.delete_object("trainjobs", job)
    fake.delete_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    code, _, err = run_cli([*scan_args, "--apply"], capsys, monkeypatch)

    assert code == 0, err
    stored = {r["metadata"]["namespace"]: r for r in fake.objects_of("openreports.io", "v1alpha1", "reports")}
    assert set(stored) == {"train"}  # serving has no results any more: its report is gone
    assert by_resource(stored["train"], "ai-owner-label") == {"other": "pass"}
    assert "reports created 0, updated 1, deleted 1" in err
    assert_valid(fake.written, crd_schemas(shared))


def test_apply_retries_a_conflicting_update_and_then_gives_up_with_a_clear_error(
    fake: FakeAPIServer, scan_args: list[str], capsys: Any, monkeypatch: Any
) -> None:
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    assert run_cli([*scan_args, "--apply"], capsys, monkeypatch)[0] == 1
    fake.custom_conflicts = 1  # another writer updated it between our read and our write
    code, _, err = run_cli([*scan_args, "--apply"], capsys, monkeypatch)
    assert code == 1 and "reports created 0, updated 1, deleted 0" in err
    fake.custom_conflicts = 10
    code, _, err = run_cli([*scan_args, "--apply"], capsys, monkeypatch)
    assert code == 2 and "cannot write namespaces/serving/reports/policyengine: 409" in err
    assert fake.custom_conflicts == 7  # three tries, then it stops


def test_cluster_scoped_results_go_to_the_cluster_report(
    fake: FakeAPIServer, scan_args: list[str], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    write(
        tmp_path / "policies" / "ns.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata: {name: namespaces-labelled}
        spec:
          match: {kinds: [{apiGroups: [""], kinds: [Namespace]}]}
          validationActions: [Warn]
          validations: [{expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"}]
        """,
    )
    code, _, err = run_cli([*scan_args, "--apply"], capsys, monkeypatch)
    assert code == 0, err  # a warning is not a violation without --strict
    (cluster,) = fake.objects_of("openreports.io", "v1alpha1", "clusterreports")
    assert cluster["kind"] == "ClusterReport" and "namespace" not in cluster["metadata"]
    assert by_resource(cluster, "namespaces-labelled") == {"serving": "warn", "train": "warn"}


def test_max_objects_stops_the_read_with_a_clear_error(
    fake: FakeAPIServer, scan_args: list[str], capsys: Any, monkeypatch: Any
) -> None:
    for i in range(5):
        fake.put_object("rayclusters", workload(RAY, f"r{i}", "train", "ml"))
    code, out, err = run_cli([*scan_args, "--max-objects", "4"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert "more objects than --max-objects allows" in err and "--kinds" in err


def test_a_server_paging_forever_is_cut_off_at_max_objects(
    fake: FakeAPIServer, scan_args: list[str], capsys: Any, monkeypatch: Any
) -> None:
    fake.endless_pages = True
    code, out, err = run_cli([*scan_args, "--max-objects", "5"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert "kept paging past --max-objects" in err
    # Bounded by the guard: the first resource listed gets at most max-objects + 2 pages, then the read stops.
    assert len(fake.custom_lists) <= 5 + 2


def test_a_resource_that_cannot_be_listed_is_named_and_left_out(
    fake: FakeAPIServer, scan_args: list[str], capsys: Any, monkeypatch: Any
) -> None:
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    fake.forbidden.add("trainjobs")
    code, out, err = run_cli(scan_args, capsys, monkeypatch)
    assert code == 1, err  # the InferenceService is still judged
    assert "not scanned: trainjobs.trainer.kubeflow.org: 403 Forbidden" in err
    assert "rogue" in out and "finetune" not in out


def test_kinds_narrows_what_is_listed(
    fake: FakeAPIServer, scan_args: list[str], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    fake.put_object("inferenceservices", workload(KSERVE, "rogue", "serving", None))
    fake.put_object("trainjobs", workload(TRAINER, "finetune", "train", None))
    out = tmp_path / "r.json"
    code, _, err = run_cli([*scan_args, "--kinds", "TrainJob", "--format", "openreports", "--output", str(out)],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 1, err
    names = {
        r["resources"][0]["name"] for rep in json.loads(out.read_text())["items"] for r in rep["results"]
    }
    assert names == {"finetune"}
    assert not any(entry.startswith("inferenceservices") for entry in fake.custom_lists)


def test_apply_needs_kube(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    inventory = write(tmp_path / "inv.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    code, _, err = run_cli(["scan", "--inventory", str(inventory), "--apply"], capsys, monkeypatch)
    assert code == 2 and "--apply needs --kube" in err
