"""Every YAML document of the upstream corpus goes through ``describe``; the pod counts and GPU totals of its
workloads are pinned here. Each row was checked against its manifest by hand: they are the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.workloads import ClaimObjects, describe

# (file, kind, name) -> (pods, total GPUs, [(template, pods, GPUs per pod)])
# Notes on the less obvious rows:
# - fluid: minReplicas 0 and no maxReplicas: a scale-to-zero predictor still runs one pod when it serves.
# - elastic imagenet: Worker replicas 2, elasticPolicy.maxReplicas 3 -> 3.
# - TrainJobs: the pods of the runtime they name (found in the corpus), the trainer's job at numNodes:
#   multi-step runs torch-with-dataset-init's dataset-initializer (1) and 2 nodes. None asks for GPUs.
# - TrainingRuntime torch-with-dataset-init: dataset-initializer 1 + node (mlPolicy.numNodes 1).
# - Ray: head 1 + per group max(replicas, minReplicas, maxReplicas) x numOfHosts; google.com/tpu is an
#   accelerator (ray-job.tpu-v6e-singlehost: 4 TPU chips in the tpu-group pod).
# - LWS vllm: replicas 2 x size 2 = 2 leaders + 2 workers, 8 GPUs each -> 32.
# - LLMInferenceService managed-dra: KServe makes the claims; the manifest names none -> 0.
# - JobSet dra: its template asks for class gpu.example.com (the example driver's), not a GPU class -> 0.
EXPECTED: dict[tuple[str, str, str], tuple[int, int, list[tuple[str, int, int]]]] = {
    ("jobset/pytorch__resnet-cifar10__resnet.yaml", "JobSet", "pytorch"): (4, 0, [("workers", 4, 0)]),
    ("jobset/simple__exclusive-placement.yaml", "JobSet", "exclusive-placement"): (9, 0, [("workers", 9, 0)]),
    ("jobset/workload-aware-scheduling__dra__jobset.yaml", "JobSet", "training-job"): (
        6,
        0,
        [("workers", 6, 0)],
    ),
    ("kserve/accelerators__tensorflow-gpu.yaml", "InferenceService", "tensorflow-gpu"): (
        1,
        1,
        [("predictor", 1, 1)],
    ),
    ("kserve/fluid__kserve-isvc.yaml", "InferenceService", "llama-31-8b-instruct"): (
        1,
        1,
        [("predictor", 1, 1)],
    ),
    (
        "kserve/llmisvc__managed-dra__llm-inference-service-managed-dra-minimal.yaml",
        "LLMInferenceService",
        "qwen2-7b-instruct-dra-minimal",
    ): (1, 0, [("main", 1, 0)]),
    (
        "kserve/llmisvc__single-node-gpu__llm-inference-service-qwen2-7b-gpu.yaml",
        "LLMInferenceService",
        "qwen2-7b-instruct-single",
    ): (3, 3, [("main", 3, 1)]),
    ("kserve/storage__hf__hf_isvc.yaml", "InferenceService", "huggingface-llama2"): (
        1,
        1,
        [("predictor", 1, 1)],
    ),
    ("kserve/storage__oci-fetch__inference_service.yaml", "InferenceService", "sklearn-oci-fetch"): (
        1,
        0,
        [("predictor", 1, 0)],
    ),
    ("kserve/storage__oci-image-volume__inference_service.yaml", "InferenceService", "sklearn-oci-native"): (
        1,
        0,
        [("predictor", 1, 0)],
    ),
    ("kserve/storage__s3__tensorflow_s3.yaml", "InferenceService", "mnist-s3"): (1, 0, [("predictor", 1, 0)]),
    ("kserve/storage__storageSpec__sklearn_storagespec.yaml", "InferenceService", "example-sklearn-isvc"): (
        1,
        0,
        [("predictor", 1, 0)],
    ),
    ("kserve/v1beta1__sklearn__v1__sklearn.yaml", "InferenceService", "sklearn-iris"): (
        1,
        0,
        [("predictor", 1, 0)],
    ),
    (
        "kubeflow-trainer/manifests__base__runtimes__torch_distributed.yaml",
        "ClusterTrainingRuntime",
        "torch-distributed",
    ): (1, 0, [("node", 1, 0)]),
    ("kubeflow-trainer/paddlepaddle__simple-gpu.yaml", "PaddleJob", "paddle-simple-gpu"): (
        2,
        4,
        [("Worker", 2, 2)],
    ),
    (
        "kubeflow-trainer/pytorch__elastic__imagenet__imagenet.yaml",
        "PyTorchJob",
        "elastic-example-imagenet",
    ): (3, 0, [("Worker", 3, 0)]),
    (
        "kubeflow-trainer/pytorch__mnist__v1__pytorch_job_mnist_nccl.yaml",
        "PyTorchJob",
        "pytorch-dist-mnist-nccl",
    ): (2, 2, [("Master", 1, 1), ("Worker", 1, 1)]),
    ("kubeflow-trainer/pytorch__simple.yaml", "PyTorchJob", "pytorch-simple"): (
        2,
        0,
        [("Master", 1, 0), ("Worker", 1, 0)],
    ),
    ("kubeflow-trainer/yaml__01-multi-node.yaml", "TrainJob", "multi-node-example"): (3, 0, [("node", 3, 0)]),
    ("kubeflow-trainer/yaml__02-runtime-patches.yaml", "TrainJob", "runtime-patches-example"): (
        2,
        0,
        [("node", 2, 0)],
    ),
    ("kubeflow-trainer/yaml__03-kueue-integration.yaml", "TrainJob", "kueue-example"): (
        3,
        0,
        [("node", 3, 0)],
    ),
    ("kubeflow-trainer/yaml__05-multi-step.yaml", "TrainingRuntime", "torch-with-dataset-init"): (
        2,
        0,
        [("dataset-initializer", 1, 0), ("node", 1, 0)],
    ),
    ("kubeflow-trainer/yaml__05-multi-step.yaml", "TrainJob", "multi-step-example"): (
        3,
        0,
        [("dataset-initializer", 1, 0), ("node", 2, 0)],
    ),
    ("kuberay/ray-cluster.kai-gpu-sharing.yaml", "RayCluster", "raycluster-half-gpu"): (
        3,
        0,
        [("head", 1, 0), ("shared-gpu", 2, 0)],
    ),
    ("kuberay/ray-cluster.sample.yaml", "RayCluster", "raycluster-kuberay"): (
        6,
        0,
        [("head", 1, 0), ("workergroup", 5, 0)],
    ),
    ("kuberay/ray-cluster.volcano-scheduler-queue.yaml", "RayCluster", "test-cluster-0"): (
        3,
        0,
        [("head", 1, 0), ("worker", 2, 0)],
    ),
    ("kuberay/ray-job.kueue-toy-sample.yaml", "RayJob", "rayjob-sample-"): (
        6,
        0,
        [("head", 1, 0), ("small-group", 5, 0)],
    ),
    ("kuberay/ray-job.tpu-v6e-singlehost.yaml", "RayJob", "v6e-4-job"): (
        2,
        4,
        [("head", 1, 0), ("tpu-group", 1, 4)],
    ),
    ("kuberay/ray-service.llm-serve.yaml", "RayService", "ray-serve-llm"): (
        2,
        4,
        [("head", 1, 0), ("gpu-group", 1, 4)],
    ),
    ("kueue/jobs__sample-pytorchjob.yaml", "PyTorchJob", "pytorch-simple"): (
        2,
        0,
        [("Master", 1, 0), ("Worker", 1, 0)],
    ),
    ("leaderworkerset/vllm__GPU__lws.yaml", "LeaderWorkerSet", "vllm"): (
        4,
        32,
        [("leader", 2, 8), ("worker", 2, 8)],
    ),
    # NVIDIA DRA examples. The two extended-resources pods ask for nvidia.com/gpu in limits (the scheduler maps
    # it to a DRA device class). The others get their GPUs through resource claims, resolved by name in the
    # pod's namespace among the corpus' claim objects: a template's devices per pod, a shared claim's once.
    # - gpu-test4: 4 MIG requests (mig.nvidia.com, count 1 each) per pod x 4 replicas = 16 MIG slices; each
    #   request's selector pins one profile, so the slices count as the device plugin names them: per pod
    #   2 nvidia.com/mig-1g.5gb, 1 nvidia.com/mig-2g.10gb, 1 nvidia.com/mig-3g.20gb.
    # - gpu-test5: two gpu.nvidia.com requests (time-sliced and MPS) in one template -> 2 per pod.
    # - gpu-test3: two pods share ResourceClaim single-gpu: 1 GPU each sees, 1 per workload.
    # - imex-test1: node-gpus (1 gpu.nvidia.com) per pod x 2; the imex.nvidia.com channel is no GPU.
    # - sharing-demo jobs: resource.k8s.io/v1alpha2 claims (count in driver parameters) -> problems, 0.
    # - vfiopci / vfio-config: the pods are in namespace gpu-test-vfiopci, their templates in gpu-test-vfio
    #   (an upstream slip): not found -> a problem, 0; the v1 vfiopci pod1 is in gpu-test-vfio and counts 1.
    ("dra/extended-resources__gpu-full.yaml", "Pod", "gpu-full-pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/extended-resources__mig-1g-12gb.yaml", "Pod", "mig-1g12gb-pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/mig+mps__sharing-demo-job-1.yaml", "Job", "sharing-demo-job"): (4, 0, [("pod", 4, 0)]),
    ("dra/mig+mps__sharing-demo-job.yaml", "Job", "sharing-demo-job"): (4, 0, [("pod", 4, 0)]),
    ("dra/quickstart__v1__gpu-test-mps.yaml", "Pod", "test-pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test-vfio-config.yaml", "Pod", "pod1-full-vfioconfig"): (1, 0, [("pod", 1, 0)]),
    ("dra/quickstart__v1__gpu-test-vfiopci.yaml", "Pod", "pod1"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test1.yaml", "Pod", "pod1"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test1.yaml", "Pod", "pod2"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test2.yaml", "Pod", "pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test3.yaml", "Pod", "pod1"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test3.yaml", "Pod", "pod2"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1__gpu-test4.yaml", "Deployment", "pod"): (4, 16, [("pod", 4, 4)]),
    ("dra/quickstart__v1__gpu-test5.yaml", "Pod", "pod0"): (1, 2, [("pod", 1, 2)]),
    ("dra/quickstart__v1__gpu-test6.yaml", "Deployment", "pod"): (4, 4, [("pod", 4, 1)]),
    ("dra/quickstart__v1__imex-test1.yaml", "Deployment", "deployment0"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1__imex-test1.yaml", "Deployment", "deployment1"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1__imex-test1.yaml", "Deployment", "deployment2"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1__imex-test1.yaml", "Deployment", "deployment3"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1beta1__gpu-test-mps.yaml", "Pod", "test-pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test-vfiopci.yaml", "Pod", "pod1"): (1, 0, [("pod", 1, 0)]),
    ("dra/quickstart__v1beta1__gpu-test1.yaml", "Pod", "pod1"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test1.yaml", "Pod", "pod2"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test2.yaml", "Pod", "pod"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test3.yaml", "Pod", "pod1"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test3.yaml", "Pod", "pod2"): (1, 1, [("pod", 1, 1)]),
    ("dra/quickstart__v1beta1__gpu-test4.yaml", "Deployment", "pod"): (4, 16, [("pod", 4, 4)]),
    ("dra/quickstart__v1beta1__gpu-test5.yaml", "Pod", "pod0"): (1, 2, [("pod", 1, 2)]),
    ("dra/quickstart__v1beta1__gpu-test6.yaml", "Deployment", "pod"): (4, 4, [("pod", 4, 1)]),
    ("dra/quickstart__v1beta1__imex-test1.yaml", "Deployment", "deployment0"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1beta1__imex-test1.yaml", "Deployment", "deployment1"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1beta1__imex-test1.yaml", "Deployment", "deployment2"): (2, 2, [("pod", 2, 1)]),
    ("dra/quickstart__v1beta1__imex-test1.yaml", "Deployment", "deployment3"): (2, 2, [("pod", 2, 1)]),
}


# Workloads whose DRA claims cannot be counted (see the notes above): each gets a problem per claim.
UNCOUNTABLE = {
    ("dra/mig+mps__sharing-demo-job-1.yaml", "Job", "sharing-demo-job"),
    ("dra/mig+mps__sharing-demo-job.yaml", "Job", "sharing-demo-job"),
    ("dra/quickstart__v1__gpu-test-vfio-config.yaml", "Pod", "pod1-full-vfioconfig"),
    ("dra/quickstart__v1beta1__gpu-test-vfiopci.yaml", "Pod", "pod1"),
}
# gpu-test4's MIG slices per pod, under the resource names of their profiles.
MIG_PER_POD = {"nvidia.com/mig-1g.5gb": 2, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-3g.20gb": 1}
# GPUs by resource of the DRA workloads, per pod template (per pod) and for the workload.
BY_RESOURCE: dict[tuple[str, str, str], tuple[dict[str, int], dict[str, int]]] = {
    **{
        (f"dra/quickstart__{v}__{f}.yaml", k, n): (per_pod, total)
        for v in ("v1", "v1beta1")
        for f, k, n, per_pod, total in (
            ("gpu-test-mps", "Pod", "test-pod", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
            ("gpu-test1", "Pod", "pod1", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
            ("gpu-test2", "Pod", "pod", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
            ("gpu-test3", "Pod", "pod1", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
            ("gpu-test4", "Deployment", "pod", MIG_PER_POD, {r: n * 4 for r, n in MIG_PER_POD.items()}),
            ("gpu-test5", "Pod", "pod0", {"nvidia.com/gpu": 2}, {"nvidia.com/gpu": 2}),
            ("gpu-test6", "Deployment", "pod", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 4}),
            ("imex-test1", "Deployment", "deployment0", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 2}),
        )
    },
    ("dra/quickstart__v1__gpu-test-vfiopci.yaml", "Pod", "pod1"): (
        {"nvidia.com/gpu": 1},
        {"nvidia.com/gpu": 1},
    ),
    ("dra/extended-resources__mig-1g-12gb.yaml", "Pod", "mig-1g12gb-pod"): (
        {"nvidia.com/mig-1g.12gb": 1},
        {"nvidia.com/mig-1g.12gb": 1},
    ),
}


def corpus_documents(root: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                docs.append((path.relative_to(root).as_posix(), doc))
    return docs


@pytest.fixture(scope="module")
def described(shared: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    views = {}
    documents = corpus_documents(shared / "corpus" / "upstream")
    claims = ClaimObjects(doc for _, doc in documents)  # as check sees them: every document first
    for rel, doc in documents:
        view = describe(doc, None, claims)
        json.dumps(view)  # the view is plain JSON
        key = (rel, view["kind"], view["name"])
        assert bool(view["problems"]) == (key in UNCOUNTABLE), (rel, view["problems"])
        views[key] = view
    return views


def test_every_upstream_document_is_described(described: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    assert len(described) >= 45


def test_upstream_workloads_are_exactly_the_pinned_ones(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    workloads = {key for key, view in described.items() if view["podTemplates"]}
    assert workloads == set(EXPECTED)


def test_upstream_dra_claim_workloads_are_marked(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    dra = {key: described[key]["usesDra"] for key in EXPECTED if key[0].startswith("dra/")}
    claimless = {key for key, uses in dra.items() if not uses}
    assert claimless == {
        ("dra/extended-resources__gpu-full.yaml", "Pod", "gpu-full-pod"),
        ("dra/extended-resources__mig-1g-12gb.yaml", "Pod", "mig-1g12gb-pod"),
    }


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}:{k[2]}")
def test_upstream_pod_counts_and_gpu_totals(
    described: dict[tuple[str, str, str], dict[str, Any]], key: tuple[str, str, str]
) -> None:
    view = described[key]
    pods, gpus, templates = EXPECTED[key]
    assert (view["pods"], view["gpus"]["total"]) == (pods, gpus)
    assert [(t["name"], t["replicas"], t["gpus"]["perPod"]) for t in view["podTemplates"]] == templates


@pytest.mark.parametrize("key", sorted(BY_RESOURCE), ids=lambda k: f"{k[0]}:{k[2]}")
def test_upstream_dra_gpus_by_resource(
    described: dict[tuple[str, str, str], dict[str, Any]], key: tuple[str, str, str]
) -> None:
    view = described[key]
    per_pod, total = BY_RESOURCE[key]
    assert [t["gpus"]["byResource"] for t in view["podTemplates"]] == [per_pod]
    assert view["gpus"]["byResource"] == total


def test_upstream_dra_claims_are_resolved(described: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    mig = described[("dra/quickstart__v1__gpu-test4.yaml", "Deployment", "pod")]
    (claim,) = mig["podTemplates"][0]["resourceClaims"]
    assert (claim["source"], claim["shared"], claim["gpus"]) == (
        "ResourceClaimTemplate mig-devices",
        False,
        4,
    )
    first = claim["devices"][0]
    assert (first["request"], first["deviceClass"], first["resource"], first["count"]) == (
        "mig-1g-5gb-0",
        "mig.nvidia.com",
        "nvidia.com/mig-1g.5gb",
        1,
    )
    assert first["selectors"] == ["device.attributes['gpu.nvidia.com'].profile == '1g.5gb'"]
    assert mig["gpus"]["claims"] == [
        {
            "template": "spec.template.spec",
            "claim": "mig-devices",
            "source": "ResourceClaimTemplate mig-devices",
            "deviceClasses": ["mig.nvidia.com"],
            "count": 4,
            "pods": 4,
            "total": 16,
            "shared": False,
        }
    ]
    shared = described[("dra/quickstart__v1beta1__gpu-test3.yaml", "Pod", "pod1")]
    assert shared["podTemplates"][0]["resourceClaims"][0]["shared"] is True
    imex = described[("dra/quickstart__v1__imex-test1.yaml", "Deployment", "deployment0")]
    channel = [c for c in imex["podTemplates"][0]["resourceClaims"] if c.get("resourceClaimName")]
    assert [(d["deviceClass"], d["gpu"], d["count"]) for c in channel for d in c["devices"]] == [
        ("imex.nvidia.com", False, 1)
    ]


def test_upstream_model_references_and_data_locations(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    hf = described[("kserve/storage__hf__hf_isvc.yaml", "InferenceService", "huggingface-llama2")]
    assert hf["models"] == [
        {
            "uri": "hf://meta-llama/Llama-2-7b-chat-hf",
            "path": "spec.predictor.model.storageUri",
            "source": "storageUri",
            "sha256": "",
        }
    ]
    llm = described[
        (
            "kserve/llmisvc__single-node-gpu__llm-inference-service-qwen2-7b-gpu.yaml",
            "LLMInferenceService",
            "qwen2-7b-instruct-single",
        )
    ]
    assert [(m["uri"], m["path"]) for m in llm["models"]] == [
        ("hf://Qwen/Qwen2.5-7B-Instruct", "spec.model.uri")
    ]
    step = described[("kubeflow-trainer/yaml__05-multi-step.yaml", "TrainJob", "multi-step-example")]
    assert step["dataLocations"] == [
        {
            "uri": "hf://tatsu-lab/alpaca",
            "path": "spec.initializer.dataset.storageUri",
            "source": "storageUri",
            "kind": "data",
        }
    ]
    spec_only = described[
        ("kserve/storage__storageSpec__sklearn_storagespec.yaml", "InferenceService", "example-sklearn-isvc")
    ]
    # storage: {key, path} names the model through a storage secret key, not a URI: reported without one,
    # so the approved-source rule sees it.
    assert spec_only["models"] == [
        {"uri": "", "path": "spec.predictor.sklearn.storage", "source": "storage", "sha256": ""}
    ]


def test_upstream_models_named_on_command_lines_and_in_serve_configs(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    lws = described[("leaderworkerset/vllm__GPU__lws.yaml", "LeaderWorkerSet", "vllm")]
    # "sh -c '... python3 -m vllm.entrypoints.openai.api_server --model meta-llama/...'": the leader only.
    assert lws["models"] == [
        {
            "uri": "hf://meta-llama/Llama-3.1-405B-Instruct",
            "path": "spec.leaderWorkerTemplate.leaderTemplate.spec.containers[0].command[2]",
            "source": "command",
            "sha256": "",
        }
    ]
    ray = described[("kuberay/ray-service.llm-serve.yaml", "RayService", "ray-serve-llm")]
    # model_id (qwen2.5-7b-instruct) is the served name; model_source is where the weights come from.
    assert ray["models"] == [
        {
            "uri": "hf://Qwen/Qwen2.5-7B-Instruct",
            "path": "spec.serveConfigV2.applications[0].args.llm_configs[0].model_loading_config.model_source",
            "source": "serveConfigV2",
            "sha256": "",
        }
    ]
    every = {(key[0], m["uri"]) for key, view in described.items() for m in view["models"]}
    assert every == {
        ("kserve/accelerators__tensorflow-gpu.yaml", "gs://kfserving-examples/models/tensorflow/flowers"),
        ("kserve/fluid__kserve-isvc.yaml", "s3://${bucket}/models/meta-llama--Meta-Llama-3.1-8B-Instruct"),
        (
            "kserve/llmisvc__managed-dra__llm-inference-service-managed-dra-minimal.yaml",
            "hf://Qwen/Qwen2.5-7B-Instruct",
        ),
        (
            "kserve/llmisvc__single-node-gpu__llm-inference-service-qwen2-7b-gpu.yaml",
            "hf://Qwen/Qwen2.5-7B-Instruct",
        ),
        ("kserve/storage__hf__hf_isvc.yaml", "hf://meta-llama/Llama-2-7b-chat-hf"),
        (
            "kserve/storage__oci-fetch__inference_service.yaml",
            "oci+fetch://ghcr.io/kliukovkin/kserve-oci-test-fixture:v1",
        ),
        (
            "kserve/storage__oci-image-volume__inference_service.yaml",
            "oci+native://ghcr.io/my-org/my-sklearn-model:v1",
        ),
        ("kserve/storage__s3__tensorflow_s3.yaml", "s3://kfserving-examples/mnist"),
        ("kserve/storage__storageSpec__sklearn_storagespec.yaml", ""),
        ("kserve/v1beta1__sklearn__v1__sklearn.yaml", "gs://kfserving-examples/models/sklearn/1.0/model"),
        ("kuberay/ray-service.llm-serve.yaml", "hf://Qwen/Qwen2.5-7B-Instruct"),
        ("leaderworkerset/vllm__GPU__lws.yaml", "hf://meta-llama/Llama-3.1-405B-Instruct"),
    }


def test_upstream_gpu_requests_and_limits_are_kept_apart(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    limits_only = described[
        ("kserve/accelerators__tensorflow-gpu.yaml", "InferenceService", "tensorflow-gpu")
    ]
    (c,) = limits_only["containers"]
    assert (c["path"], c["gpus"]["requests"], c["gpus"]["limits"]) == (
        "spec.predictor.tensorflow",
        {},
        {"nvidia.com/gpu": 1},
    )
    both = described[("kserve/fluid__kserve-isvc.yaml", "InferenceService", "llama-31-8b-instruct")]
    assert (
        both["containers"][0]["gpus"]["requests"]
        == both["containers"][0]["gpus"]["limits"]
        == {"nvidia.com/gpu": 1}
    )


def test_upstream_dra_and_placement(described: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    dra = described[("jobset/workload-aware-scheduling__dra__jobset.yaml", "JobSet", "training-job")]
    assert dra["usesDra"] is True
    assert dra["podTemplates"][0]["resourceClaims"][0]["resourceClaimTemplateName"] == "gpu-claim-template"
    patched = described[
        ("kubeflow-trainer/yaml__02-runtime-patches.yaml", "TrainJob", "runtime-patches-example")
    ]
    regions = patched["podTemplates"][0]["regions"]
    assert regions["pinned"] is False
    assert regions["path"] == (
        "spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0].template.spec.template.spec"
    )
    assert patched["regions"]["allPinned"] is False


def test_upstream_dra_extended_resources_count_once(
    described: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    # The corpus' DeviceClass mig-1g-12gb.gpu.nvidia.com serves nvidia.com/mig-1g.12gb (KEP-5004): the pod's
    # limit is one MIG slice, counted once under the device plugin's name, not again as a DRA request.
    for key, resource in (
        (("dra/extended-resources__gpu-full.yaml", "Pod", "gpu-full-pod"), "nvidia.com/gpu"),
        (("dra/extended-resources__mig-1g-12gb.yaml", "Pod", "mig-1g12gb-pod"), "nvidia.com/mig-1g.12gb"),
    ):
        view = described[key]
        assert view["gpus"]["byResource"] == {resource: 1}
        assert "draExtendedResources" not in view["containers"][0]["gpus"]
