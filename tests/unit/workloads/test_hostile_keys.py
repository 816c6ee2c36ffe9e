"""Map keys chosen by the request (Kubeflow role names, replica-spec keys, resource names, KServe
framework keys) reach field paths cut to a bound, so the view's memory stays a small multiple of the
request's size however long a key is, and however many containers repeat the path through it."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from policyengine.workloads import describe
from policyengine.workloads.values import MAX_KEY_IN_PATH

LONG = "R" * 100_000
# Peak memory of describe() per byte of the request's JSON: ~7 after the bound, ~950 before it.
MAX_MEMORY_PER_INPUT_BYTE = 16


def containers(n: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "c",
            "image": "i",
            "env": [{"value": "s3://b/x"}],
            "args": ["gs://a/b"],
            "resources": {"limits": {"nvidia.com/gpu": "x"}},
        }
        for _ in range(n)
    ]


def kubeflow(key: str, role: str) -> dict[str, Any]:
    pod = {"template": {"spec": {"containers": containers(200)}}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {key: {role: pod}}}


HOSTILE = {
    "kubeflow-role": kubeflow("pytorchReplicaSpecs", LONG),
    "kubeflow-replica-specs-key": kubeflow(LONG + "ReplicaSpecs", "Worker"),
    "mig-resource-name": {
        "kind": "Pod",
        "spec": {"containers": [{"resources": {"limits": {"nvidia.com/mig-" + LONG: "x"}}}] * 50},
    },
    "kserve-framework-key": {
        "kind": "InferenceService",
        "spec": {"predictor": {LONG: {"storageUri": "s3://a/b"}}},
    },
}


def peak_memory_of_describe(obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    tracemalloc.start()
    try:
        view = describe(obj)
        return tracemalloc.get_traced_memory()[1], view
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_memory_stays_a_small_multiple_of_the_request(name: str) -> None:
    text = json.dumps(HOSTILE[name])
    peak, view = peak_memory_of_describe(json.loads(text))
    assert peak <= MAX_MEMORY_PER_INPUT_BYTE * len(text), f"{peak} bytes for a {len(text)}-byte request"
    paths = [c["path"] for c in view["containers"]] + [p["path"] for p in view["problems"]]
    paths += [d["path"] for d in view["dataLocations"]]
    assert paths
    assert all(len(p) < 2 * MAX_KEY_IN_PATH + 100 for p in paths)
    assert len(json.dumps(view)) <= 4 * len(text)


def test_a_long_key_is_quoted_and_cut_in_paths_and_whole_in_the_name() -> None:
    view = describe(kubeflow("pytorchReplicaSpecs", LONG))
    template = view["podTemplates"][0]
    assert template["name"] == LONG
    cut = '"' + "R" * 60 + '…" (100000 characters)'
    assert template["path"] == f"spec.pytorchReplicaSpecs.{cut}.template.spec"
    assert view["containers"][0]["path"] == f"spec.pytorchReplicaSpecs.{cut}.template.spec.containers[0]"
    assert view["problems"][0]["path"].startswith(f"spec.pytorchReplicaSpecs.{cut}.template.spec")


def test_keys_up_to_the_bound_are_shown_whole() -> None:
    role = "W" * MAX_KEY_IN_PATH
    view = describe(kubeflow("pytorchReplicaSpecs", role))
    assert view["podTemplates"][0]["path"] == f"spec.pytorchReplicaSpecs.{role}.template.spec"


def test_non_string_keys_and_names_do_not_raise() -> None:
    # YAML manifests may carry int keys, and names of any type.
    obj = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "spec": {
            1: {},
            "pytorchReplicaSpecs": {2: {"template": {"spec": {"containers": [{"name": [1] * 10**4}]}}}},
        },
    }
    view = describe(obj)
    assert view["podTemplates"][0]["path"] == "spec.pytorchReplicaSpecs.2.template.spec"
    assert len(view["containers"][0]["name"]) < 100
