"""describe() on hostile workloads: every kind's realistic shape with fields replaced by values of the
wrong type, odd or huge quantities and counts, long keys, deep nesting and many containers. It never
raises, its output is strict JSON, and its output and peak memory stay within a constant factor of the
input (measured with a floor per element, so that an empty ``{}`` counts as the object it becomes)."""

from __future__ import annotations

import copy
import json
import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyengine.workloads import describe

LONG = "k" * 20_000
ODD_TEXT = [
    "1e30000000", "1e-30000000", "1" * 5000, "9" * 30, "16Ei", "0.9999999999", "-1", "1.5", "500m", "²",
    "٣", " 3 ", "", "Always", "s3://b/x", "hf://org/m@sha256:" + "a" * 64, "https://x.s3.amazonaws.com/k",
    "nvidia.com/gpu", "nvidia.com/mig-1g.5gb", "node", "Worker", "topology.kubernetes.io/region", LONG,
    "s3://a " * 200,
]  # fmt: skip
ODD_NUMBERS = [2**31, 2**63, 2**64, 10**30, -(2**70), math.inf, -math.inf, math.nan, 1e308, 0.5]


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
    st.sampled_from(ODD_NUMBERS),
    st.builds(pow, st.just(10), st.just(5000)),  # too long for str(): built, so hypothesis never shows it
)
HOSTILE = st.one_of(
    SCALARS,
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ),
    st.integers(min_value=50, max_value=400).map(nested),
)

CONTAINER = {
    "name": "c",
    "image": "repo/img@sha256:" + "b" * 64,
    "restartPolicy": "Always",
    "env": [{"name": "D", "value": "s3://bucket/data"}],
    "args": ["--data=gs://b/x"],
    "command": ["run"],
    "resources": {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": 1, "nvidia.com/mig-1g.5gb": "2"},
        "claims": [{"name": "gpu"}],
    },
}
POD = {
    "nodeSelector": {"topology.kubernetes.io/region": "eu-west-1"},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["H100"]}
                        ]
                    }
                ]
            }
        }
    },
    "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}],
    "initContainers": [dict(CONTAINER)],
    "containers": [dict(CONTAINER)],
}
TEMPLATE = {"metadata": {"labels": {"a": "b"}}, "spec": POD}
META = {"name": "w", "namespace": "ns", "annotations": {"policyengine.io/datasets": "s3://a/b,gs://c/d"}}


def obj(api: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": META, "spec": spec}


JOB = {"parallelism": 2, "completions": 4, "template": TEMPLATE}
RAY = {
    "headGroupSpec": {"template": TEMPLATE},
    "workerGroupSpecs": [
        {
            "groupName": "g",
            "replicas": 2,
            "minReplicas": 1,
            "maxReplicas": 4,
            "numOfHosts": 2,
            "template": TEMPLATE,
        }
    ],
}
KSERVE = {"minReplicas": 1, "maxReplicas": 3, "model": {"storageUri": "s3://m/x", **CONTAINER}, "containers": [CONTAINER],
          "workerSpec": {"pipelineParallelSize": 3, "containers": [CONTAINER]}}  # fmt: skip
REPLICATED = {"replicatedJobs": [{"name": "node", "replicas": 2, "template": {"spec": JOB}}]}
KINDS = [
    obj("v1", "Pod", POD),
    obj("apps/v1", "Deployment", {"replicas": 3, "template": TEMPLATE}),
    obj("apps/v1", "DaemonSet", {"template": TEMPLATE}),
    obj("batch/v1", "Job", JOB),
    obj("batch/v1", "CronJob", {"jobTemplate": {"spec": JOB}}),
    obj("kubeflow.org/v1", "PyTorchJob", {"elasticPolicy": {"maxReplicas": 8},
        "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": TEMPLATE}, "Worker": {"replicas": 3, "template": TEMPLATE}}}),
    obj("trainer.kubeflow.org/v1alpha1", "TrainJob", {
        "trainer": {"numNodes": 2, "image": "i", "env": [{"value": "s3://x/y"}], "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2}}},
        "initializer": {"dataset": {"storageUri": "hf://d/x"}, "model": {"storageUri": "hf://m/y"}},
        "runtimePatches": [{"trainingRuntimeSpec": {"template": {"spec": REPLICATED}}}],
        "podSpecOverrides": [{"targetJobs": [{"name": "node"}], "nodeSelector": {"a": "b"}}]}),
    obj("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime", {"mlPolicy": {"numNodes": 4}, "template": {"spec": REPLICATED}}),
    obj("ray.io/v1", "RayCluster", RAY),
    obj("ray.io/v1", "RayJob", {"rayClusterSpec": RAY, "submitterPodTemplate": TEMPLATE}),
    obj("ray.io/v1", "RayService", {"rayClusterConfig": RAY}),
    obj("jobset.x-k8s.io/v1alpha2", "JobSet", REPLICATED),
    obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2,
        "leaderWorkerTemplate": {"size": 4, "leaderTemplate": TEMPLATE, "workerTemplate": TEMPLATE}}),
    obj("serving.kserve.io/v1beta1", "InferenceService", {"predictor": KSERVE, "transformer": KSERVE}),
    obj("serving.kserve.io/v1alpha1", "LLMInferenceService", {"model": {"uri": "hf://m/x"}, "replicas": 2,
        "parallelism": {"data": 4, "dataLocal": 2, "pipeline": 2}, "template": POD, "worker": POD,
        "prefill": {"replicas": 1, "template": POD, "worker": POD}}),
    obj("batch.volcano.sh/v1alpha1", "Job", {"tasks": [{"name": "t", "replicas": 2, "template": TEMPLATE}]}),
]  # fmt: skip


def places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (map keys and list indexes)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from places(item, (*path, index))


def parent_of(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        root = root[step]
    return root


@st.composite
def hostile_workloads(draw: st.DrawFn) -> Any:
    """A realistic object of some kind, then a few edits: a value replaced, a key made long or odd, a
    list of containers (or anything else) repeated many times."""
    root: Any = copy.deepcopy(draw(st.sampled_from(KINDS)))
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        where = draw(st.sampled_from(list(places(root))))
        if not where:
            if draw(st.booleans()):
                root = draw(HOSTILE)  # the whole object is of a wrong type
            continue
        parent, last = parent_of(root, where), where[-1]
        edit = draw(st.sampled_from(["replace", "rename", "repeat"]))
        if edit == "replace":
            parent[last] = draw(HOSTILE)
        elif edit == "rename" and isinstance(parent, dict):
            key = draw(
                st.one_of(
                    st.sampled_from([LONG, LONG + "ReplicaSpecs", "nvidia.com/mig-" + LONG, ""]),
                    st.integers(),
                    st.text(max_size=8),
                )
            )
            parent[key] = parent.pop(last)
        elif edit == "repeat" and isinstance(parent[last], list) and parent[last]:
            parent[last] = parent[last] * draw(st.integers(min_value=2, max_value=60))
    return root


def weight(value: Any) -> int:
    """The input's size with a floor of 64 bytes per element (what a decoded element costs anyway)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += 64
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


# Constant factors over weight(): a blow-up that grows with the product of two inputs (a long key
# times the containers under it) or with an exponent exceeds them at the sizes generated here.
MEMORY_FACTOR, OUTPUT_FACTOR, SLACK = 64, 16, 256 * 1024


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(hostile_workloads())
def test_describe_survives_hostile_workloads(workload: Any) -> None:
    tracemalloc.start()
    try:
        view = describe(workload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    output = json.dumps(view, allow_nan=False)
    size = weight(workload)
    assert len(output) <= OUTPUT_FACTOR * size + SLACK
    assert peak <= MEMORY_FACTOR * size + SLACK
    assert all(len(p["message"]) < 1000 and len(p["path"]) < 2000 for p in view["problems"])
    assert all(0 <= view[k] < 2**63 for k in ("pods",)) and 0 <= view["gpus"]["total"] < 2**63
