"""Where each kind keeps its pod templates and how many pods each produces, on small hand-written objects."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.workloads import describe


def pod(gpus: int = 0, image: str = "img") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    return {"containers": [container]}


def templ(gpus: int = 0) -> dict[str, Any]:
    return {"spec": pod(gpus)}


def obj(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": "ns"},
        "spec": spec,
    }


def summary(o: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    view = describe(o)
    assert view["problems"] == []
    return [(t["name"], t["path"], t["replicas"], t["gpus"]["perPod"]) for t in view["podTemplates"]]


def test_pod() -> None:
    o = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod(2)}
    assert summary(o) == [("pod", "spec", 1, 2)]
    assert describe(o)["containers"][0]["path"] == "spec.containers[0]"


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "ReplicaSet"])
def test_replicated_controllers(kind: str) -> None:
    assert summary(obj("apps/v1", kind, {"replicas": 4, "template": templ(1)})) == [
        ("pod", "spec.template.spec", 4, 1)
    ]
    assert describe(obj("apps/v1", kind, {"template": templ(1)}))["gpus"]["total"] == 1  # replicas default 1


def test_daemonset_counts_one_pod_and_is_flagged_per_node() -> None:
    view = describe(obj("apps/v1", "DaemonSet", {"template": templ(1)}))
    assert (view["pods"], view["perNode"], view["podTemplates"][0]["perNode"]) == (1, True, True)


def test_job_and_cronjob_use_parallelism() -> None:
    assert summary(obj("batch/v1", "Job", {"parallelism": 3, "completions": 9, "template": templ(1)})) == [
        ("pod", "spec.template.spec", 3, 1)
    ]
    assert summary(obj("batch/v1", "Job", {"template": templ()})) == [("pod", "spec.template.spec", 1, 0)]
    cron = obj("batch/v1", "CronJob", {"jobTemplate": {"spec": {"parallelism": 2, "template": templ(1)}}})
    assert summary(cron) == [("pod", "spec.jobTemplate.spec.template.spec", 2, 1)]


def test_job_pods_are_capped_by_completions() -> None:
    # The Job controller never runs more pods than completions remain: parallelism 5 with 2 completions
    # runs at most 2 pods (Kueue counts a Job's pods the same way).
    job = {"parallelism": 5, "completions": 2, "template": templ(1)}
    assert summary(obj("batch/v1", "Job", job)) == [("pod", "spec.template.spec", 2, 1)]
    cron = obj("batch/v1", "CronJob", {"jobTemplate": {"spec": job}})
    assert summary(cron) == [("pod", "spec.jobTemplate.spec.template.spec", 2, 1)]
    jobs = [{"name": "w", "replicas": 3, "template": {"spec": job}}]
    assert describe(obj("jobset.x-k8s.io/v1alpha2", "JobSet", {"replicatedJobs": jobs}))["pods"] == 6


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("PyTorchJob", "pytorchReplicaSpecs"),
        ("TFJob", "tfReplicaSpecs"),
        ("PaddleJob", "paddleReplicaSpecs"),
        ("XGBoostJob", "xgbReplicaSpecs"),
        ("JAXJob", "jaxReplicaSpecs"),
    ],
)
def test_kubeflow_v1_jobs_sum_their_roles(kind: str, key: str) -> None:
    spec = {
        key: {
            "Master": {"replicas": 1, "template": templ(1)},
            "Worker": {"replicas": 3, "template": templ(2)},
        }
    }
    assert summary(obj("kubeflow.org/v1", kind, spec)) == [
        ("Master", f"spec.{key}.Master.template.spec", 1, 1),
        ("Worker", f"spec.{key}.Worker.template.spec", 3, 2),
    ]
    assert describe(obj("kubeflow.org/v1", kind, spec))["gpus"]["total"] == 7


def test_elastic_pytorchjob_counts_workers_at_max_replicas() -> None:
    spec = {
        "elasticPolicy": {"minReplicas": 1, "maxReplicas": 8},
        "pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": templ(1)}},
    }
    assert describe(obj("kubeflow.org/v1", "PyTorchJob", spec))["gpus"]["total"] == 8


def test_trainjob_multiplies_resources_per_node_by_num_nodes() -> None:
    spec = {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {
            "numNodes": 4,
            "image": "trainer@sha256:" + "a" * 64,
            "resourcesPerNode": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "8"}},
        },
        "initializer": {"model": {"storageUri": "hf://acme/llama:" + "b" * 40}},
    }
    view = describe(obj("trainer.kubeflow.org/v1alpha1", "TrainJob", spec))
    assert (view["pods"], view["gpus"]["total"], view["gpus"]["maxPerPod"]) == (4, 32, 8)
    (c,) = view["containers"]
    assert (c["path"], c["resourcesPath"], c["gpus"]["limits"]) == (
        "spec.trainer",
        "spec.trainer.resourcesPerNode",
        {"nvidia.com/gpu": 8},
    )
    assert view["images"][0]["path"] == "spec.trainer.image"
    assert [(m["uri"], m["path"]) for m in view["models"]] == [
        ("hf://acme/llama:" + "b" * 40, "spec.initializer.model.storageUri")
    ]
    assert view["isAiWorkload"]


def test_trainjob_placement_comes_from_runtime_patches_for_the_trainer_job() -> None:
    patch_pod = {"nodeSelector": {"topology.kubernetes.io/region": "eu-west-1"}}
    other_pod = {"nodeSelector": {"topology.kubernetes.io/region": "us-east-1"}}
    jobs = [
        {"name": "dataset-initializer", "template": {"spec": {"template": {"spec": other_pod}}}},
        {"name": "node", "template": {"spec": {"template": {"spec": patch_pod}}}},
    ]
    spec = {
        "trainer": {"numNodes": 1},
        "runtimePatches": [
            {"manager": "m", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": jobs}}}}
        ],
    }
    regions = describe(obj("trainer.kubeflow.org/v1alpha1", "TrainJob", spec))["podTemplates"][0]["regions"]
    assert (regions["pinned"], regions["allowed"]) == (True, ["eu-west-1"])
    assert regions["path"].endswith("replicatedJobs[1].template.spec.template.spec")


def test_training_runtime_counts_the_node_job_by_num_nodes() -> None:
    jobs = [
        {"name": "model-initializer", "template": {"spec": {"template": templ()}}},
        {"name": "node", "replicas": 1, "template": {"spec": {"template": templ(4)}}},
    ]
    spec = {"mlPolicy": {"numNodes": 3}, "template": {"spec": {"replicatedJobs": jobs}}}
    rows = summary(obj("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime", spec))
    assert rows == [
        ("model-initializer", "spec.template.spec.replicatedJobs[0].template.spec.template.spec", 1, 0),
        ("node", "spec.template.spec.replicatedJobs[1].template.spec.template.spec", 3, 4),
    ]


@pytest.mark.parametrize(
    ("kind", "wrap", "base"),
    [
        ("RayCluster", lambda c: c, "spec"),
        ("RayJob", lambda c: {"rayClusterSpec": c}, "spec.rayClusterSpec"),
        ("RayService", lambda c: {"rayClusterConfig": c}, "spec.rayClusterConfig"),
    ],
)
def test_ray_counts_head_and_workers_at_their_maximum(kind: str, wrap: Any, base: str) -> None:
    cluster = {
        "headGroupSpec": {"template": templ()},
        "workerGroupSpecs": [
            {"groupName": "gpu", "replicas": 1, "maxReplicas": 4, "numOfHosts": 2, "template": templ(1)},
            {"groupName": "cpu", "template": templ()},
        ],
    }
    assert summary(obj("ray.io/v1", kind, wrap(cluster))) == [
        ("head", f"{base}.headGroupSpec.template.spec", 1, 0),
        ("gpu", f"{base}.workerGroupSpecs[0].template.spec", 8, 1),
        ("cpu", f"{base}.workerGroupSpecs[1].template.spec", 1, 0),
    ]


def test_rayjob_on_an_existing_cluster_brings_only_its_submitter() -> None:
    spec = {"clusterSelector": {"ray.io/cluster": "shared"}, "submitterPodTemplate": templ()}
    assert summary(obj("ray.io/v1", "RayJob", spec)) == [
        ("submitter", "spec.submitterPodTemplate.spec", 1, 0)
    ]


def test_jobset_multiplies_replicas_by_parallelism() -> None:
    jobs = [
        {"name": "workers", "replicas": 3, "template": {"spec": {"parallelism": 2, "template": templ(1)}}}
    ]
    assert summary(obj("jobset.x-k8s.io/v1alpha2", "JobSet", {"replicatedJobs": jobs})) == [
        ("workers", "spec.replicatedJobs[0].template.spec.template.spec", 6, 1)
    ]


def test_leaderworkerset_has_one_leader_and_size_minus_one_workers_per_group() -> None:
    lwt = {"size": 4, "leaderTemplate": templ(1), "workerTemplate": templ(8)}
    view = describe(
        obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2, "leaderWorkerTemplate": lwt})
    )
    assert [(t["name"], t["replicas"]) for t in view["podTemplates"]] == [("leader", 2), ("worker", 6)]
    assert (view["pods"], view["gpus"]["total"]) == (8, 2 * 1 + 6 * 8)


def test_leaderworkerset_without_leader_template_uses_the_worker_template_for_all() -> None:
    lwt = {"size": 3, "workerTemplate": templ(1)}
    view = describe(
        obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2, "leaderWorkerTemplate": lwt})
    )
    assert [(t["name"], t["path"], t["replicas"]) for t in view["podTemplates"]] == [
        ("worker", "spec.leaderWorkerTemplate.workerTemplate.spec", 6)
    ]


def test_inference_service_components_framework_containers_and_replicas() -> None:
    spec = {
        "predictor": {
            "minReplicas": 1,
            "maxReplicas": 5,
            "model": {
                "modelFormat": {"name": "huggingface"},
                "storageUri": "s3://acme-eu-models/llama@sha256:" + "c" * 64,
                "resources": {"limits": {"nvidia.com/gpu": 2}},
            },
            "workerSpec": {"pipelineParallelSize": 3, **pod(2)},
        },
        "transformer": {"minReplicas": 0, "containers": [{"name": "t", "image": "tr:1"}]},
    }
    view = describe(obj("serving.kserve.io/v1beta1", "InferenceService", spec))
    assert [(t["name"], t["path"], t["replicas"], t["gpus"]["perPod"]) for t in view["podTemplates"]] == [
        ("predictor", "spec.predictor", 5, 2),
        ("predictor-worker", "spec.predictor.workerSpec", 10, 2),
        ("transformer", "spec.transformer", 1, 0),
    ]
    assert view["gpus"]["total"] == 5 * 2 + 10 * 2
    assert [c["path"] for c in view["containers"]] == [
        "spec.predictor.model",
        "spec.predictor.workerSpec.containers[0]",
        "spec.transformer.containers[0]",
    ]
    (model,) = view["models"]
    assert (model["path"], model["sha256"]) == ("spec.predictor.model.storageUri", "c" * 64)
    assert view["dataLocations"][-1] == {
        "uri": model["uri"],
        "path": "spec.predictor.model.storageUri",
        "source": "storageUri",
        "kind": "model",
    }


def test_inference_service_min_replicas_alone_counts() -> None:
    spec = {"predictor": {"minReplicas": 3, "sklearn": {"storageUri": "gs://b/m"}}}
    assert describe(obj("serving.kserve.io/v1beta1", "InferenceService", spec))["pods"] == 3


def test_llm_inference_service_main_worker_and_prefill() -> None:
    spec = {
        "model": {"uri": "hf://Qwen/Qwen2.5-7B-Instruct"},
        "replicas": 2,
        "parallelism": {"data": 8, "dataLocal": 2, "tensor": 4},
        "template": pod(4),
        "worker": pod(4),
        "prefill": {"replicas": 3, "template": pod(1)},
    }
    rows = summary(obj("serving.kserve.io/v1alpha2", "LLMInferenceService", spec))
    # 8 data-parallel ranks, 2 per pod -> groups of 4 pods: 1 leader (template) + 3 workers per replica.
    assert rows == [
        ("main", "spec.template", 2, 4),
        ("worker", "spec.worker", 6, 4),
        ("prefill-main", "spec.prefill.template", 3, 1),
    ]


def test_llm_inference_service_pipeline_parallel_workers() -> None:
    spec = {"replicas": 1, "parallelism": {"pipeline": 2}, "template": pod(8), "worker": pod(8)}
    assert describe(obj("serving.kserve.io/v1alpha2", "LLMInferenceService", spec))["gpus"]["total"] == 16


def test_volcano_job_is_not_a_batch_job() -> None:
    tasks = [
        {"name": "ps", "replicas": 2, "template": templ()},
        {"name": "worker", "replicas": 4, "template": templ(1)},
    ]
    assert summary(obj("batch.volcano.sh/v1alpha1", "Job", {"tasks": tasks})) == [
        ("ps", "spec.tasks[0].template.spec", 2, 0),
        ("worker", "spec.tasks[1].template.spec", 4, 1),
    ]


def test_unknown_kinds_with_a_standard_template() -> None:
    assert summary(obj("example.com/v1", "Trainer", {"replicas": 2, "template": templ(1)})) == [
        ("pod", "spec.template.spec", 2, 1)
    ]
    assert summary(obj("example.com/v1", "Trainer", {"template": templ(1)}))[0][2] == 1
    no_pods = describe(obj("v1", "ConfigMap", {}))
    assert (no_pods["podTemplates"], no_pods["pods"], no_pods["isAiWorkload"]) == ([], 0, False)


def test_init_containers_come_first_with_their_paths() -> None:
    spec = {
        "initContainers": [{"name": "fetch", "image": "f"}],
        "containers": [{"name": "main", "image": "m"}],
    }
    view = describe(obj("apps/v1", "Deployment", {"template": {"spec": spec}}))
    assert [(c["name"], c["path"], c["init"]) for c in view["containers"]] == [
        ("fetch", "spec.template.spec.initContainers[0]", True),
        ("main", "spec.template.spec.containers[0]", False),
    ]
    assert view["podTemplates"][0]["containers"] == [c["path"] for c in view["containers"]]
