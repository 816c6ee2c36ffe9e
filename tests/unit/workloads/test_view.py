"""The parts of the workload view that do not depend on the kind: GPUs, placement, data, models, images."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine.workloads import describe
from policyengine.workloads.values import gpu_quantity, is_storage_uri, storage_uris_in


def deployment(
    spec: dict[str, Any], *, replicas: int = 1, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns", "annotations": annotations or {}},
        "spec": {"replicas": replicas, "template": {"spec": spec}},
    }


def container(name: str = "main", **resources: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "image": "img", "resources": resources}


# --- GPUs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count"), [(1, 1), ("2", 2), ("4", 4), (" 3 ", 3), ("1e1", 10), ("2k", 2000), (0, 0), (2.0, 2)]
)
def test_gpu_quantities_parse(value: Any, count: int) -> None:
    problems: list[dict[str, str]] = []
    assert gpu_quantity(value, "p", problems) == count
    assert problems == []


@pytest.mark.parametrize("value", ["one", "1.5", "-1", "500m", True, None, [1], "1Gi5"])
def test_malformed_gpu_quantities_are_problems_not_exceptions(value: Any) -> None:
    problems: list[dict[str, str]] = []
    assert gpu_quantity(value, "spec.x", problems) == 0
    assert problems[0]["path"] == "spec.x"


def test_malformed_quantity_shows_in_the_view_with_its_path() -> None:
    view = describe(deployment({"containers": [container(limits={"nvidia.com/gpu": "lots"})]}))
    assert view["problems"] == [
        {
            "path": "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
            "message": "GPU quantity 'lots' is not a Kubernetes quantity",
        }
    ]
    assert view["gpus"]["total"] == 0


def test_requests_and_limits_are_both_kept() -> None:
    c = container(
        requests={"nvidia.com/gpu": "1", "cpu": "2"}, limits={"nvidia.com/gpu": "2", "memory": "1Gi"}
    )
    (view,) = describe(deployment({"containers": [c]}))["containers"]
    assert view["gpus"] == {
        "requests": {"nvidia.com/gpu": 1},
        "limits": {"nvidia.com/gpu": 2},
        "byResource": {"nvidia.com/gpu": 2},
        "count": 2,
    }


def test_gpu_resources_are_the_default_accelerators_mig_and_the_configured_ones() -> None:
    limits = {
        "nvidia.com/gpu": 1,
        "amd.com/gpu": 1,
        "nvidia.com/mig-1g.10gb": 2,
        "intel.com/gpu": 4,
        "google.com/tpu": 4,
    }
    obj = deployment({"containers": [container(limits=limits)]}, replicas=2)
    by_resource = {"amd.com/gpu": 2, "google.com/tpu": 8, "nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 4}
    assert describe(obj)["gpus"] == {
        "total": 16,
        "maxPerPod": 8,
        "byResource": by_resource,
        "claims": [],
        # No product is pinned: all 16 may land on any product a team budgets.
        "byProduct": {},
        "unpinned": [{"template": "spec.template.spec", "gpus": 16, "excluded": []}],
        # Described alone (a CREATE), the whole workload is what it adds to its team's usage.
        "charge": {"total": 16, "byResource": by_resource, "byProduct": {}},
    }
    # A configured list replaces the default one (google.com/tpu is no longer counted); nvidia.com/gpu,
    # amd.com/gpu and MIG slices count whatever the list.
    config = {"spec": {"gpu": {"resources": ["nvidia.com/gpu", "intel.com/gpu"]}}}
    assert describe(obj, config)["gpus"]["total"] == 16
    assert "google.com/tpu" not in describe(obj, config)["gpus"]["byResource"]
    assert describe(obj, config["spec"])["gpus"]["total"] == 16  # the spec alone works too


def test_gpus_per_pod_follow_the_effective_request_rule() -> None:
    spec = {
        "initContainers": [
            container("warmup", limits={"nvidia.com/gpu": 4}),  # runs alone, before the app
            {**container("proxy", limits={"nvidia.com/gpu": 1}), "restartPolicy": "Always"},  # a sidecar
        ],
        "containers": [
            container("a", limits={"nvidia.com/gpu": 1}),
            container("b", limits={"nvidia.com/gpu": 1}),
        ],
    }
    view = describe(deployment(spec, replicas=3))
    assert view["podTemplates"][0]["gpus"] == {"perPod": 4, "byResource": {"nvidia.com/gpu": 4}}
    assert [c["sidecar"] for c in view["containers"]] == [False, True, False, False]
    spec["containers"].append(container("c", limits={"nvidia.com/gpu": 2}))
    assert describe(deployment(spec))["podTemplates"][0]["gpus"]["perPod"] == 5  # 1 sidecar + 4 app


# --- placement ----------------------------------------------------------------------------------------------

REGION = "topology.kubernetes.io/region"


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }


def regions(spec: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    r = describe(deployment({"containers": [container()], **spec}))["podTemplates"][0]["regions"]
    assert r["path"] == "spec.template.spec"
    return r["pinned"], r["allowed"], r["excluded"]


def test_unpinned_template() -> None:
    assert regions({}) == (False, [], [])


def test_node_selector_pins_one_region() -> None:
    assert regions({"nodeSelector": {REGION: "eu-west-1"}}) == (True, ["eu-west-1"], [])


def test_affinity_in_pins_and_terms_are_ored() -> None:
    spec = {
        "affinity": affinity(
            [{"key": REGION, "operator": "In", "values": ["eu-west-1", "us-east-1"]}],
            [{"key": REGION, "operator": "In", "values": ["eu-central-1"]}],
        )
    }
    assert regions(spec) == (True, ["eu-central-1", "eu-west-1", "us-east-1"], [])


def test_not_in_removes_regions_and_in_expressions_intersect() -> None:
    term = [
        {"key": REGION, "operator": "In", "values": ["eu-west-1", "us-east-1", "eu-central-1"]},
        {"key": REGION, "operator": "In", "values": ["eu-west-1", "us-east-1"]},
        {"key": REGION, "operator": "NotIn", "values": ["us-east-1"]},
    ]
    assert regions({"affinity": affinity(term)}) == (True, ["eu-west-1"], [])


def test_one_term_without_in_leaves_the_template_unpinned() -> None:
    spec = {
        "affinity": affinity(
            [{"key": REGION, "operator": "In", "values": ["eu-west-1"]}],
            [
                {"key": "gpu", "operator": "Exists"},
                {"key": REGION, "operator": "NotIn", "values": ["us-east-1"]},
            ],
        )
    }
    assert regions(spec) == (False, [], ["us-east-1"])


def test_node_selector_and_affinity_both_apply() -> None:
    spec = {
        "nodeSelector": {REGION: "eu-west-1"},
        "affinity": affinity([{"key": REGION, "operator": "In", "values": ["us-east-1"]}]),
    }
    assert regions(spec) == (True, [], [])  # nothing can satisfy both
    spec["affinity"] = affinity([{"key": REGION, "operator": "NotIn", "values": ["us-east-1"]}])
    assert regions(spec) == (True, ["eu-west-1"], [])


def test_preferred_affinity_does_not_pin() -> None:
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {"matchExpressions": [{"key": REGION, "operator": "In", "values": ["x"]}]},
                }
            ]
        }
    }
    assert regions({"affinity": preferred}) == (False, [], [])


def test_gpu_product_selection() -> None:
    spec = {
        "containers": [container()],
        "affinity": affinity(
            [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]
        ),
    }
    products = describe(deployment(spec))["podTemplates"][0]["gpuProducts"]
    assert (products["pinned"], products["allowed"]) == (True, ["NVIDIA-H100-80GB-HBM3"])
    spec = {"containers": [container()], "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}}
    assert describe(deployment(spec))["podTemplates"][0]["gpuProducts"]["allowed"] == [
        "NVIDIA-A100-SXM4-40GB"
    ]


def test_workload_regions_summarise_the_templates() -> None:
    tasks = [
        {
            "name": "a",
            "template": {"spec": {"nodeSelector": {REGION: "eu-west-1"}, "containers": [container()]}},
        },
        {"name": "b", "template": {"spec": {"containers": [container()]}}},
    ]
    view = describe({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "spec": {"tasks": tasks}})
    assert view["regions"] == {"allPinned": False, "allowed": ["eu-west-1"]}


# --- data, models, images -----------------------------------------------------------------------------------


def test_data_locations_from_annotation_env_args_and_command() -> None:
    c = {
        "name": "train",
        "image": "trainer:1",
        "env": [
            {"name": "DATA", "value": "s3://acme-eu-datasets/corpus/"},
            {"name": "HOME", "value": "/root"},
            {"name": "BLOB", "value": "https://acct.blob.core.windows.net/c/x.parquet"},
            {"name": "DOCS", "value": "https://example.com/readme"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "args": ["--train=gs://acme-us-data/a", "--eval", "abfss://fs@acct.dfs.core.windows.net/e"],
        "command": ["sh", "-c", "aws s3 cp s3://other/x . && python train.py"],
    }
    obj = deployment(
        {"containers": [c]}, annotations={"policyengine.io/datasets": "s3://a/b, hf://datasets/x ,"}
    )
    data = [(d["uri"], d["path"], d["source"]) for d in describe(obj)["dataLocations"]]
    base = "spec.template.spec.containers[0]"
    assert data == [
        ("s3://acme-eu-datasets/corpus/", f"{base}.env[0].value", "env"),
        ("https://acct.blob.core.windows.net/c/x.parquet", f"{base}.env[2].value", "env"),
        ("s3://other/x", f"{base}.command[2]", "command"),
        ("gs://acme-us-data/a", f"{base}.args[0]", "args"),
        ("abfss://fs@acct.dfs.core.windows.net/e", f"{base}.args[2]", "args"),
        ("s3://a/b", "metadata.annotations[policyengine.io/datasets]", "annotation"),
        ("hf://datasets/x", "metadata.annotations[policyengine.io/datasets]", "annotation"),
    ]


@pytest.mark.parametrize(
    ("uri", "storage"),
    [
        ("s3://b/k", True),
        ("az://c/p", True),
        ("oci://registry/m:1", True),
        ("https://bucket.s3.eu-west-1.amazonaws.com/k", True),
        ("https://storage.googleapis.com/b/k", True),
        ("https://example.com/x", False),
        ("http://acct.blob.core.windows.net/c", False),
        ("s3://", False),
        ("/mnt/data", False),
    ],
)
def test_storage_uri_recognition(uri: str, storage: bool) -> None:
    assert is_storage_uri(uri) is storage


def test_uris_inside_text_stop_at_quotes_and_separators() -> None:
    assert storage_uris_in("load('s3://b/k'); cp gs://g/x,hf://o/m") == ["s3://b/k", "gs://g/x", "hf://o/m"]


def test_model_annotation_references_with_digests() -> None:
    digest = "d" * 64
    annotations = {
        "policyengine.io/models": f"oci://registry.acme.internal/models/llama@sha256:{digest}, hf://acme/m"
    }
    view = describe(deployment({"containers": [container()]}, annotations=annotations))
    assert view["models"] == [
        {
            "uri": f"oci://registry.acme.internal/models/llama@sha256:{digest}",
            "path": "metadata.annotations[policyengine.io/models]",
            "source": "annotation",
            "sha256": digest,
        },
        {
            "uri": "hf://acme/m",
            "path": "metadata.annotations[policyengine.io/models]",
            "source": "annotation",
            "sha256": "",
        },
    ]
    assert [d["kind"] for d in view["dataLocations"]] == ["model", "model"]
    assert view["isAiWorkload"]  # a model reference makes it an AI workload


def test_images_with_paths_and_digests() -> None:
    pinned = "registry/app@sha256:" + "e" * 64
    spec = {
        "initContainers": [{"name": "i", "image": "busybox"}],
        "containers": [{"name": "m", "image": pinned}],
    }
    assert describe(deployment(spec))["images"] == [
        {"image": "busybox", "path": "spec.template.spec.initContainers[0].image", "sha256": ""},
        {"image": pinned, "path": "spec.template.spec.containers[0].image", "sha256": "e" * 64},
    ]


def test_ai_workload_detection() -> None:
    assert not describe(deployment({"containers": [container()]}))["isAiWorkload"]
    assert describe(deployment({"containers": [container(limits={"nvidia.com/gpu": 1})]}))["isAiWorkload"]
    assert describe({"apiVersion": "ray.io/v1", "kind": "RayCluster", "spec": {}})["isAiWorkload"]


def test_dra_claims_are_noted() -> None:
    spec = {
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "shared"}],
        "containers": [{"name": "m", "image": "i", "resources": {"claims": [{"name": "gpu"}]}}],
    }
    view = describe(deployment(spec))
    assert view["usesDra"]
    assert view["podTemplates"][0]["resourceClaims"] == [
        {
            "name": "gpu",
            "path": "spec.template.spec.resourceClaims[0]",
            "resourceClaimName": "shared",
            "source": "ResourceClaim shared",
            "shared": True,
            "group": "",
            "devices": [],
            "gpus": 0,
        }
    ]
    assert view["containers"][0]["claims"] == ["gpu"]
    # Nothing says what the claim holds: that is a problem, not 0 GPUs.
    assert [p["path"] for p in view["problems"]] == ["spec.template.spec.resourceClaims[0]"]


# --- robustness ---------------------------------------------------------------------------------------------


def test_malformed_counts_are_problems() -> None:
    view = describe(deployment({"containers": [container()]}, replicas="many"))  # type: ignore[arg-type]
    assert view["pods"] == 1
    assert view["problems"] == [
        {"path": "spec.replicas", "message": "count 'many' is not a non-negative integer"}
    ]


def test_not_an_object() -> None:
    view = describe([1, 2])  # type: ignore[arg-type]
    assert view["problems"] == [{"path": "", "message": "the object is not a mapping"}]
    assert describe({"kind": "Deployment", "spec": "x"})["problems"] == [
        {"path": "spec", "message": "spec is not an object"}
    ]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
KINDS = st.sampled_from(
    [
        "Pod",
        "Deployment",
        "Job",
        "CronJob",
        "PyTorchJob",
        "TrainJob",
        "RayJob",
        "JobSet",
        "LeaderWorkerSet",
        "InferenceService",
        "LLMInferenceService",
        "ClusterTrainingRuntime",
        "Widget",
    ]
)


@settings(max_examples=150, deadline=None)
@given(kind=KINDS, spec=JSONISH, metadata=JSONISH)
def test_describe_never_raises_and_returns_json(kind: str, spec: Any, metadata: Any) -> None:
    view = describe({"apiVersion": "x/v1", "kind": kind, "metadata": metadata, "spec": spec})
    json.dumps(view)
    assert view["gpus"]["total"] >= 0


def test_storage_uri_fast_paths_agree_with_the_full_scan() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from policyengine.workloads import values

    def scan(text: str) -> list[str]:
        return [m.group(0) for m in values._URI_IN_TEXT.finditer(text) if values.is_storage_uri(m.group(0))]

    pieces = [
        *"s3gahfoc+:/ab.-_x \"',;()[]{}<>=@?",
        "s3://",
        "gs://",
        "hf://",
        "https://",
        "oci+fetch://",
        "S3://",
    ]

    @settings(max_examples=3000, derandomize=True, deadline=None)
    @given(st.lists(st.sampled_from(pieces), max_size=12).map("".join))
    def agree(text: str) -> None:
        assert values.storage_uris_in(text) == scan(text)

    agree()


def test_an_uppercase_digest_is_not_a_pin() -> None:
    # OCI digests are lowercase hex; a registry would reject the uppercase form.
    from policyengine.workloads.values import sha256_of

    assert sha256_of("registry/app@sha256:" + "E" * 64) == ""
    assert sha256_of("registry/app@sha256:" + "e" * 64) == "e" * 64
