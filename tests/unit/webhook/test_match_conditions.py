"""The built-in pod kinds are split between the Fail and the Ignore entry by ``matchConditions``: what
asks for accelerators, makes DRA claims or names models by annotation fails closed, the rest fails open.
The generated conditions are evaluated with the engine's own CEL (``object``, ``oldObject``, ``request``
bound as the API server binds them) on every manifest of the corpus."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine import Engine
from policyengine.cel import Budget, CelEvalError, get_backend
from policyengine.gate import cluster_objects, namespaces_from, request_for
from policyengine.model import Inventory
from policyengine.policyset import load_policy_set
from policyengine.workloads import describe
from tests.helpers import ACME_CONFIG
from tests.unit.webhook.test_blast_radius import _bundled, _corpus, _shipped, reached
from webhook.conditions import MAX_EXPRESSION

BACKENDS = ("fast", "reference")
PACKS = ("gpu-quotas", "model-provenance", "data-residency")
MAX_CONDITIONS = 64  # the API server's limit per webhook
# The conditions' verdicts, not their speed: the API server's cost limit is checked by
# test_the_conditions_stay_within_the_api_server_limits, and a loaded machine must not turn the reference
# backend's wall-clock allowance into a failure.
VERDICT_ONLY = Budget(max_seconds=600.0)


def entries(
    configuration: Mapping[str, Any],
    operation: str,
    group: str,
    resource: str,
    obj: Any,
    old: Any = None,
    sub_resource: str = "",
    backend: str = "fast",
) -> list[str]:
    """The failurePolicy of each entry the API server calls for this request, after its matchConditions;
    an entry whose condition fails to evaluate refuses the request ("Fail") or skips it ("Ignore")."""
    cel = get_backend(backend)
    request = {
        "operation": operation,
        "resource": {"group": group, "version": "v1", "resource": resource},
        "subResource": sub_resource,
        "namespace": "team-a",
    }
    activation = cel.bind({"object": obj, "oldObject": old, "request": request})
    full = f"{resource}/{sub_resource}" if sub_resource else resource
    out = []
    for hook in configuration["webhooks"]:
        if hook["failurePolicy"] not in reached({"webhooks": [hook]}, operation, group, full):
            continue
        conditions = hook.get("matchConditions", [])
        assert len(conditions) <= MAX_CONDITIONS
        try:
            results = [cel.compile(c["expression"]).evaluate(activation, VERDICT_ONLY) for c in conditions]
        except CelEvalError as err:
            raise AssertionError(f"{hook['name']}'s condition failed on {group}/{resource}: {err}") from err
        assert all(isinstance(r, bool) for r in results), results
        if all(results):
            out.append(hook["failurePolicy"])
    return out


def _configurations(repo_root: Path) -> tuple[dict[str, Any], ...]:
    return (_bundled(), _shipped(repo_root))


@pytest.mark.shared
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_corpus_request_reaches_one_entry_and_what_the_packs_govern_fails_closed(
    shared: Path, repo_root: Path, backend: str
) -> None:
    docs = _corpus(shared, repo_root)
    engine = Engine(load_policy_set([], config_paths=[ACME_CONFIG]))
    inventory = Inventory(namespaces=namespaces_from(docs), objects=cluster_objects(docs))
    configurations = _configurations(repo_root)
    governed: list[str] = []
    wrong: list[tuple[str, str, list[str], bool]] = []
    for doc in docs:
        request = request_for(doc)
        gvr = request.resource
        decision = engine.evaluate(request, inventory=inventory, now=datetime.now(UTC))
        denied = {
            p
            for r in decision.results
            for p in PACKS
            if r.denies and r.policy_source is not None and f"/{p}/" in r.policy_source.file
        }
        gpus = describe(doc.data, namespace=request.namespace)["gpus"]["total"] > 0
        # A GPU-less workload denied by model-provenance or data-residency only for what its containers
        # read (model servers in command, bucket mounts, env URIs) is not told apart by the conditions:
        # it fails open (deploy/README.md, "Blast radius"); every GPU one and every quota deny fails closed.
        must_fail = gpus or "gpu-quotas" in denied
        sent = bool(reached(configurations[0], "CREATE", gvr.group, gvr.resource))
        for configuration in configurations:
            for operation, old in (("CREATE", None), ("UPDATE", doc.data)):
                got = entries(
                    configuration, operation, gvr.group, gvr.resource, doc.data, old, backend=backend
                )
                if sent and (len(got) != 1 or (must_fail and got != ["Fail"])):
                    wrong.append((f"{doc.file}:{doc.line}", operation, got, must_fail))
        if sent and must_fail:
            governed.append(f"{gvr.group}/{gvr.resource}")
    assert wrong == [], wrong[:20]
    # The corpus holds governed Pods and built-in controllers, not only AI workload kinds.
    assert {"/pods", "apps/deployments", "batch/jobs"} <= set(governed)


def _pod(spec: Any, annotations: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "team-a"}
    if annotations is not None:
        meta["annotations"] = annotations
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta}
    if spec is not None:
        pod["spec"] = spec
    return pod


def _containers(resources: Any, field: str = "containers") -> dict[str, Any]:
    return {field: [{"name": "c", "image": "busybox", "resources": resources}]}


def _deployment(pod_spec: Any, template_annotations: Any = None) -> dict[str, Any]:
    meta = {"annotations": template_annotations} if template_annotations is not None else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"replicas": 1, "template": {"metadata": meta, "spec": pod_spec}},
    }


LONG = "x" * 300
CASES: list[tuple[str, str, str, Any, str]] = [
    # (case, group, resource, object, entry)
    ("plain pod", "", "pods", _pod(_containers({"limits": {"cpu": "1", "memory": "1Gi"}})), "Ignore"),
    (
        "plain deployment",
        "apps",
        "deployments",
        _deployment(_containers({"requests": {"cpu": "1"}})),
        "Ignore",
    ),
    ("gpu pod limit", "", "pods", _pod(_containers({"limits": {"nvidia.com/gpu": 1}})), "Fail"),
    ("gpu pod request", "", "pods", _pod(_containers({"requests": {"amd.com/gpu": "1"}})), "Fail"),
    ("mig slice", "", "pods", _pod(_containers({"limits": {"nvidia.com/mig-1g.5gb": 1}})), "Fail"),
    (
        "tpu init container",
        "",
        "pods",
        _pod(_containers({"limits": {"google.com/tpu": 4}}, "initContainers")),
        "Fail",
    ),
    (
        "dra extended resource",
        "",
        "pods",
        _pod(_containers({"limits": {"deviceclass.resource.kubernetes.io/gpu.example.com": 1}})),
        "Fail",
    ),
    ("dra claims", "", "pods", _pod({"containers": [], "resourceClaims": [{"name": "g"}]}), "Fail"),
    (
        "models annotation",
        "",
        "pods",
        _pod({"containers": []}, {"policyengine.io/models": "hf://o/m"}),
        "Fail",
    ),
    (
        "datasets on template",
        "apps",
        "deployments",
        _deployment({"containers": []}, {"policyengine.io/datasets": "s3://b/x"}),
        "Fail",
    ),
    (
        "gpu deployment",
        "apps",
        "deployments",
        _deployment(_containers({"limits": {"nvidia.com/gpu": 8}})),
        "Fail",
    ),
    (
        "gpu cronjob",
        "batch",
        "cronjobs",
        {
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {
                "jobTemplate": {
                    "spec": {"template": {"spec": _containers({"limits": {"nvidia.com/gpu": 1}})}}
                }
            },
        },
        "Fail",
    ),
    (
        "gpu podtemplate",
        "",
        "podtemplates",
        {
            "kind": "PodTemplate",
            "metadata": {"name": "t"},
            "template": {"spec": _containers({"limits": {"habana.ai/gaudi": 1}})},
        },
        "Fail",
    ),
    (
        "job group claims",
        "batch",
        "jobs",
        {
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "scheduling": {"resourceClaims": [{"name": "g"}]},
                "template": {"spec": {"containers": []}},
            },
        },
        "Fail",
    ),
    # Hostile and sparse objects: never an evaluation error, and the plain ones fail open.
    ("no spec", "", "pods", _pod(None), "Ignore"),
    ("null spec", "", "pods", {"kind": "Pod", "metadata": {"name": "p"}, "spec": None}, "Ignore"),
    ("containers null", "", "pods", _pod({"containers": None, "initContainers": None}), "Ignore"),
    ("containers a string", "", "pods", _pod({"containers": "x", "resourceClaims": None}), "Ignore"),
    ("container null", "", "pods", _pod({"containers": [None, 3, "x"]}), "Ignore"),
    ("resources null", "", "pods", _pod(_containers(None)), "Ignore"),
    (
        "limits a list",
        "",
        "pods",
        _pod(_containers({"limits": ["nvidia.com/gpu"], "requests": None})),
        "Ignore",
    ),
    (
        "300-char names",
        "",
        "pods",
        _pod(_containers({"limits": {LONG: 1, f"example.com/{LONG}": 1}})),
        "Ignore",
    ),
    (
        "300-char gpu-prefixed name",
        "",
        "pods",
        _pod(_containers({"limits": {f"nvidia.com/mig-{LONG}": 1}})),
        "Fail",
    ),
    (
        "annotations null",
        "",
        "pods",
        _pod({"containers": []}, None) | {"metadata": {"annotations": None}},
        "Ignore",
    ),
    ("metadata a list", "", "pods", {"kind": "Pod", "metadata": [1], "spec": {"containers": []}}, "Ignore"),
    ("template a string", "apps", "deployments", {"kind": "Deployment", "spec": {"template": "x"}}, "Ignore"),
    ("object a list", "", "pods", [1, 2], "Ignore"),
    ("empty object", "batch", "jobs", {}, "Ignore"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("case", "group", "resource", "obj", "want"), CASES, ids=[c[0] for c in CASES])
def test_pod_kinds_reach_the_entry_their_pod_spec_asks_for(
    repo_root: Path, backend: str, case: str, group: str, resource: str, obj: Any, want: str
) -> None:
    for configuration in _configurations(repo_root):
        for operation, old in (("CREATE", None), ("UPDATE", obj)):
            got = entries(configuration, operation, group, resource, obj, old, backend=backend)
            assert got == [want], (case, operation, got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_requests_are_not_touched_by_the_conditions(repo_root: Path, backend: str) -> None:
    """An AI workload without GPUs still fails closed; a namespace and a scale request fail open."""
    job = {"kind": "PyTorchJob", "metadata": {"name": "j"}, "spec": {}}
    scale = {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 3}}
    for configuration in _configurations(repo_root):
        assert entries(configuration, "CREATE", "kubeflow.org", "pytorchjobs", job, backend=backend) == [
            "Fail"
        ]
        assert entries(configuration, "CREATE", "", "namespaces", {"kind": "Namespace"}, backend=backend) == [
            "Ignore"
        ]
        got = entries(configuration, "UPDATE", "apps", "deployments", scale, scale, "scale", backend)
        assert got == ["Ignore"]


def test_the_conditions_stay_within_the_api_server_limits(repo_root: Path) -> None:
    for configuration in _configurations(repo_root):
        hooks = configuration["webhooks"]
        assert [h["failurePolicy"] for h in hooks] == ["Fail", "Ignore"]
        for hook in hooks:
            assert 1 <= len(hook["matchConditions"]) <= MAX_CONDITIONS
            for condition in hook["matchConditions"]:
                assert len(condition["name"]) <= 63
                assert len(condition["expression"]) <= MAX_EXPRESSION
        # Both entries list the pods; the conditions decide which one is called.
        for hook in hooks:
            assert hook["failurePolicy"] in reached({"webhooks": [hook]}, "CREATE", "", "pods")


def test_a_config_accelerator_is_counted_by_the_condition() -> None:
    from webhook.configuration import webhook_configuration

    config = {"spec": {"gpu": {"resources": ["example.com/npu"]}}}
    doc = webhook_configuration(
        load_policy_set([]).policies, service_namespace="pe", service_name="pe", ca_bundle=b"", config=config
    )
    pod = _pod(_containers({"limits": {"example.com/npu": 1}}))
    assert entries(doc, "CREATE", "", "pods", pod) == ["Fail"]
    assert entries(_bundled(), "CREATE", "", "pods", pod) == ["Ignore"]
