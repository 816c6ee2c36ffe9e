"""One verdict everywhere (SPEC §1): ``check --format json`` and ``POST /validate`` agree on every
manifest of the shared corpus and the examples: the verdict, the (policy, outcome) set, the warnings."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from policyengine import Engine
from policyengine.cli import main
from policyengine.codec import request_from_manifest
from policyengine.errors import LoadError
from policyengine.gate import cluster_objects, is_object, namespaces_from, request_for
from policyengine.inventory import from_documents
from policyengine.loader import Document, read_documents
from policyengine.model import Action, Inventory, Outcome, Request
from policyengine.policyset import bundled_policies_dir, load_policy_set
from tests.helpers import ACME_CONFIG
from webhook.app import WebhookServices, create_app
from webhook.inventories import StaticInventory
from webhook.policies import LivePolicies
from webhook.recorder import MemoryRecorder
from webhook.review import bound_warnings
from webhook.server import engine_loader
from webhook.settings import Settings

Key = tuple[str, str, str, str]


def _manifest_files(roots: list[Path]) -> list[Path]:
    """Files whose every document is a Kubernetes object (the corpus also holds signing bundles)."""
    files = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
                continue
            try:
                docs = read_documents([str(path)])
            except LoadError:
                continue
            if docs and all(is_object(d.data) for d in docs):
                files.append(path)
    return files


def _review(request: Request) -> dict[str, Any]:
    gvk, gvr = request.kind, request.resource
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": request.uid,
            "kind": {"group": gvk.group, "version": gvk.version, "kind": gvk.kind},
            "resource": {"group": gvr.group, "version": gvr.version, "resource": gvr.resource},
            "name": request.name,
            "namespace": request.namespace,
            "operation": request.operation,
            "userInfo": {},
            "object": request.object,
            "oldObject": request.old_object,
            "dryRun": False,
        },
    }


def _key(resource: dict[str, str]) -> Key:
    return (resource["apiVersion"], resource["kind"], resource["namespace"], resource["name"])


def _from_check(files: list[Path], capsys: pytest.CaptureFixture[str]) -> dict[Key, dict[str, Any]]:
    code = main(["check", "--config", ACME_CONFIG, *map(str, files), "--format", "json"])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    seen: dict[Key, dict[str, Any]] = defaultdict(lambda: {"denied": False, "results": set(), "warnings": []})
    for r in json.loads(out)["results"]:
        entry = seen[_key(r["resource"])]
        entry["results"].add((r["policy"], r["outcome"]))
        if r["action"] == "deny" and r["outcome"] in ("fail", "error"):
            entry["denied"] = True
        if r["action"] == "warn" and r["outcome"] == "fail":
            entry["warnings"].append(f"{r['policy']}: {r['message']}")
    return seen


@pytest.mark.shared
def test_check_and_validate_agree_on_every_manifest(
    shared: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = repo_root / "tests" / "fixtures" / "models"  # one workload per place a model is named
    extended = repo_root / "tests" / "fixtures" / "dra-extended"  # GPUs asked for as DRA extended resources
    groups = repo_root / "tests" / "fixtures" / "scheduling"  # claims made for a group of pods
    volumes = repo_root / "tests" / "fixtures" / "claims"  # data behind persistentVolumeClaim volumes
    roots = [shared / "corpus" / "upstream", repo_root / "examples" / "manifests", models, extended, groups]
    roots.append(volumes)
    files = _manifest_files(roots)
    assert models / "model-sources.yaml" in files
    assert len(files) >= 20, files
    expected = _from_check(files, capsys)
    docs: list[Document] = read_documents([str(f) for f in files])
    recorder = MemoryRecorder()
    engine = engine_loader(Settings(config=(ACME_CONFIG,)))()
    policies = LivePolicies(lambda: engine)
    policies.serve(engine)
    # The cluster holds the DRA claims and claim templates the corpus' pods name, and their PodGroups and
    # Workloads, the PersistentVolumeClaims, PersistentVolumes and Fluid Datasets of claim volumes, and the
    # Trainer runtimes the TrainJobs name, as check sees them.
    claims = cluster_objects(docs)
    inventory = StaticInventory(Inventory(namespaces=namespaces_from(docs), objects=claims))
    dra_quota: set[str] = set()
    residency: dict[str, set[str]] = defaultdict(set)  # claim fixtures' workloads -> residency rules failed
    services = WebhookServices(
        policies=policies, inventory=inventory, recorder=recorder, reload_interval=None
    )
    compared = 0
    sourced: set[str] = set()
    mounted: set[str] = set()
    with TestClient(create_app(services)) as client:
        for doc in docs:
            request = request_for(doc)
            response = client.post("/validate", json=_review(request)).json()["response"]
            decision = recorder.decisions[-1]
            key = (str(doc.data.get("apiVersion")), request.kind.kind, request.namespace, request.name)
            want = expected.get(key, {"denied": False, "results": set(), "warnings": []})
            got = {(r.policy, str(r.outcome)) for r in decision.violations}
            where = f"{doc.file}:{doc.line} {key}"
            assert (not response["allowed"]) == want["denied"], where
            assert got == want["results"], where
            assert response.get("warnings", []) == bound_warnings(want["warnings"]), where
            assert (
                all(
                    r.action is not Action.DENY or r.outcome not in (Outcome.FAIL, Outcome.ERROR)
                    for r in decision.results
                )
                == response["allowed"]
            ), where
            compared += 1
            if doc.file.endswith("model-sources.yaml"):
                model_rules = ("model-approved-source", "model-pinned-by-digest", "model-signature-verified")
                if any(policy in model_rules for policy, _ in got):
                    sourced.add(key[3])
            if doc.file.endswith("mounted-buckets.yaml") and any(
                policy == "residency-data-locations" for policy, _ in got
            ):
                mounted.add(request.name)
            if Path(doc.file).name == "claims.yaml" and request.kind.kind == "Job":
                residency[request.name] |= {p for p, _ in got if p.startswith("residency-")}
            if any(r.policy == "gpu-team-quota" and r.outcome is Outcome.FAIL for r in decision.results):
                dra_quota.add(f"{Path(doc.file).name}:{request.name}")
    assert compared == len(docs)
    # Every model source was seen, and judged alike, by both paths: each fails a model rule.
    assert sourced == {
        "vllm-args",
        "tgi-env",
        "sglang-shell",
        "nested-shell",
        "kserve-multi",
        "kserve-storage-key",
        "modelcar",
        "ray-llm",
        "mlflow-alias",
    }
    # Bucket CSI volumes are data locations at admission too: the EU jobs mounting US buckets are denied.
    assert mounted == {"raw-ingest", "feature-build"}
    # GPUs asked for only through DRA claim templates and shared claims reach the quota at admission too.
    assert {"quickstart__v1__gpu-test4.yaml:pod", "quickstart__v1beta1__gpu-test3.yaml:pod1"} <= dra_quota
    # And GPUs asked for as DRA extended resources (deviceclass.resource.kubernetes.io/<class>).
    assert "job-128-gpus.yaml:extended-128" in dra_quota
    # A group's claim reaches the quota once, on the PodGroup or on the Job whose spec.scheduling makes it;
    # the pods sharing the PodGroup's claim are not charged it again.
    assert {"pod-group-claims.yaml:trainer-group-0", "pod-group-claims.yaml:scheduled"} <= dra_quota
    assert "pod-group-claims.yaml:group-members" not in dra_quota
    # A claim bound to a US bucket volume, and a claim found nowhere, are denied at admission as in CI;
    # a disk provisioned from a StorageClass and a Fluid Dataset of EU data are not.
    assert residency == {
        "bound-to-us-bucket": {"residency-data-locations"},
        "missing-claim": {"residency-claims-located"},
        "scratch-disk": set(),
        "fluid-cache": set(),
    }


@pytest.mark.shared
def test_the_engine_and_validate_agree_on_updates_of_suspended_jobs(repo_root: Path) -> None:
    """UPDATEs with their oldObject (``check`` has none; ``policyengine test`` evaluates them with the
    engine): a suspended Job whose GPUs grow, one unsuspended in the same UPDATE, one shrunk, and the
    other workload kinds of the pack's suspended-Job cases get the same decision from both paths."""
    tests = repo_root / "policies" / "gpu-quotas" / "tests"
    policy_set = load_policy_set(
        [str(bundled_policies_dir() / "gpu-quotas")],
        config_paths=[str(tests / "config.yaml")],
        include_bundled=False,
    )
    engine = Engine(policy_set)
    world = from_documents(
        d.data for d in read_documents([str(tests / "cluster.yaml"), str(tests / "updates" / "crowded.yaml")])
    )
    (suite,) = read_documents([str(tests / "suspended.yaml")])
    recorder = MemoryRecorder()
    policies = LivePolicies(lambda: engine)
    policies.serve(engine)
    services = WebhookServices(
        policies=policies, inventory=StaticInventory(world), recorder=recorder, reload_interval=None
    )
    verdicts: dict[str, bool] = {}
    with TestClient(create_app(services)) as client:
        for case in suite.data["spec"]["cases"]:
            new, old = case["object"], case["oldObject"]
            request = replace(request_from_manifest(new, operation="UPDATE"), object=new, old_object=old)
            want = engine.evaluate(request, inventory=world, now=datetime.now(UTC))
            response = client.post("/validate", json=_review(request)).json()["response"]
            got = recorder.decisions[-1]
            assert got.request.old_object == old, case["name"]
            assert response["allowed"] == want.allowed, case["name"]
            assert {(r.policy, str(r.outcome), r.message) for r in got.violations} == {
                (r.policy, str(r.outcome), r.message) for r in want.violations
            }, case["name"]
            verdicts[case["name"]] = response["allowed"]
    # The pack's cases as the webhook decides them: growth denied (also when unsuspended in the same
    # UPDATE), a shrink allowed, growth within the quota allowed.
    assert verdicts["unsuspending-in-the-same-update-is-charged-the-same"] is False
    assert verdicts["a-suspended-trainjob-whose-resources-per-node-grow-is-charged-the-growth"] is False
    assert verdicts["shrinking-a-suspended-job-is-allowed-over-the-quota"] is True
    assert verdicts["a-suspended-job-whose-gpus-grow-is-charged-the-growth"] is True
