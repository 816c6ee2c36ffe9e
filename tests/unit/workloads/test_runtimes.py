"""A TrainJob is described with the pods its Kubeflow Trainer runtime gives it (resolved by name among the
objects the caller knows), with its own overrides; a runtime found nowhere is a problem, not 0."""

from __future__ import annotations

from typing import Any

from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.runtimes import MAX_RUNTIME_JOBS, MAX_RUNTIMES
from policyengine.workloads.values import INT64_MAX

DIGEST = "@sha256:" + "a" * 64
CLUSTER = "ClusterTrainingRuntime[torch-gpu]"
NODE = f"{CLUSTER}.spec.template.spec.replicatedJobs[1].template.spec.template.spec"
INIT = f"{CLUSTER}.spec.template.spec.replicatedJobs[0].template.spec.template.spec"


def job(name: str, containers: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    labels = {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer" if name == "node" else name}
    pod = {"template": {"spec": {"containers": containers}}}
    return {"name": name, "template": {"metadata": {"labels": labels}, "spec": pod}, **fields}


def runtime(
    kind: str = "ClusterTrainingRuntime",
    name: str = "torch-gpu",
    namespace: str | None = None,
    gpus: int = 4,
    init_gpus: int = 1,
) -> dict[str, Any]:
    node = {"name": "node", "image": "pytorch/pytorch:2.7", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
    init = {
        "name": "model-initializer",
        "image": "ghcr.io/kubeflow/trainer/model-initializer",
        "env": [{"name": "STORAGE_URI", "value": "hf://meta-llama/Llama-3.2-1B-Instruct"}],
    }
    if init_gpus:
        init["resources"] = {"limits": {"nvidia.com/gpu": init_gpus}}
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": kind,
        "metadata": meta,
        "spec": {
            "mlPolicy": {"numNodes": 2, "torch": {}},
            "template": {"spec": {"replicatedJobs": [job("model-initializer", [init]), job("node", [node])]}},
        },
    }


def trainjob(trainer: dict[str, Any] | None = None, **ref: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"runtimeRef": {"name": "torch-gpu", **ref}}
    if trainer is not None:
        spec["trainer"] = trainer
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "tune", "namespace": "team-a"},
        "spec": spec,
    }


def test_a_trainjob_is_charged_the_gpus_per_node_of_its_runtime_times_num_nodes() -> None:
    view = describe(trainjob({"numNodes": 3}), claims=ClaimObjects([runtime(init_gpus=0)]))
    assert view["problems"] == []
    assert [(t["name"], t["replicas"], t["gpus"]["perPod"]) for t in view["podTemplates"]] == [
        ("model-initializer", 1, 0),
        ("node", 3, 4),
    ]
    assert (view["pods"], view["gpus"]["total"], view["gpus"]["charge"]["total"]) == (4, 12, 12)
    trainer = [c for c in view["containers"] if c["gpus"]["count"]]
    assert [(c["path"], c["resourcesPath"]) for c in trainer] == [
        (f"{NODE}.containers[0]", f"{NODE}.containers[0].resources")
    ]


def test_without_num_nodes_the_runtimes_ml_policy_counts() -> None:
    view = describe(trainjob(), claims=ClaimObjects([runtime(init_gpus=0)]))
    assert (view["pods"], view["gpus"]["total"]) == (3, 8)


def test_the_trainjobs_resources_per_node_override_the_runtimes() -> None:
    trainer = {
        "numNodes": 3,
        "image": "acme/trainer" + DIGEST,
        "resourcesPerNode": {"limits": {"nvidia.com/gpu": 8}},
    }
    view = describe(trainjob(trainer), claims=ClaimObjects([runtime(init_gpus=0)]))
    assert (view["pods"], view["gpus"]["total"], view["gpus"]["maxPerPod"]) == (4, 24, 8)
    counted = [(c["path"], c["resourcesPath"], c["gpus"]["count"]) for c in view["containers"]]
    assert counted == [
        (f"{INIT}.containers[0]", f"{INIT}.containers[0].resources", 0),
        (f"{NODE}.containers[0]", f"{NODE}.containers[0].resources", 0),  # replaced: not counted too
        ("spec.trainer", "spec.trainer.resourcesPerNode", 8),
    ]
    # The TrainJob's image replaces the runtime's: only its own is an image of the workload's node pods.
    assert [(i["image"], i["path"]) for i in view["images"]] == [
        ("ghcr.io/kubeflow/trainer/model-initializer", f"{INIT}.containers[0].image"),
        ("acme/trainer" + DIGEST, "spec.trainer.image"),
    ]


def test_a_gpu_model_initializer_of_the_runtime_is_counted_and_its_model_seen() -> None:
    view = describe(trainjob({"numNodes": 2}), claims=ClaimObjects([runtime(init_gpus=1)]))
    assert (view["gpus"]["total"], view["gpus"]["charge"]["total"]) == (1 + 2 * 4, 9)
    assert [(m["uri"], m["path"]) for m in view["models"]] == [
        ("hf://meta-llama/Llama-3.2-1B-Instruct", f"{INIT}.containers[0].env[0].value")
    ]
    assert ("pytorch/pytorch:2.7", f"{NODE}.containers[0].image") in [
        (i["image"], i["path"]) for i in view["images"]
    ]


def test_the_trainjobs_own_storage_uri_replaces_the_runtimes() -> None:
    obj = trainjob({"numNodes": 1})
    obj["spec"]["initializer"] = {"model": {"storageUri": "hf://acme/model"}}
    view = describe(obj, claims=ClaimObjects([runtime()]))
    assert [(m["uri"], m["path"]) for m in view["models"]] == [
        ("hf://acme/model", "spec.initializer.model.storageUri")
    ]


def test_a_namespaced_runtime_is_found_in_the_trainjobs_namespace_only() -> None:
    elsewhere = runtime("TrainingRuntime", namespace="team-b")
    view = describe(trainjob({"numNodes": 2}, kind="TrainingRuntime"), claims=ClaimObjects([elsewhere]))
    assert view["problems"] == [
        {
            "path": "spec.runtimeRef",
            "message": "TrainingRuntime torch-gpu in namespace team-a not found among the checked manifests or"
            " the inventory: the pods it gives this TrainJob cannot be counted",
        }
    ]
    here = runtime("TrainingRuntime", namespace="team-a", init_gpus=0)
    view = describe(trainjob({"numNodes": 2}, kind="TrainingRuntime"), claims=ClaimObjects([elsewhere, here]))
    assert (view["problems"], view["gpus"]["total"]) == ([], 8)
    assert view["containers"][1]["path"].startswith("TrainingRuntime[team-a/torch-gpu].spec.template")


def test_a_cluster_runtime_is_not_a_namespaced_one_of_the_same_name() -> None:
    view = describe(
        trainjob({"numNodes": 2}), claims=ClaimObjects([runtime("TrainingRuntime", namespace="team-a")])
    )
    assert [p["message"].split(" not found")[0] for p in view["problems"]] == [
        "ClusterTrainingRuntime torch-gpu"
    ]


def test_a_runtime_found_nowhere_is_a_problem_not_zero() -> None:
    view = describe(trainjob({"numNodes": 2}))
    assert view["problems"] == [
        {
            "path": "spec.runtimeRef",
            "message": "ClusterTrainingRuntime torch-gpu not found among the checked manifests or the inventory:"
            " the pods it gives this TrainJob cannot be counted",
        }
    ]
    assert view["pods"] == 2  # the TrainJob's own trainer is still counted


def test_a_reference_to_another_kind_is_a_problem() -> None:
    view = describe(trainjob({"numNodes": 2}, apiGroup="example.com", kind="Runtime"))
    assert view["problems"][0]["path"] == "spec.runtimeRef"
    assert (
        "example.com Runtime torch-gpu, which is not a Kubeflow Trainer runtime"
        in view["problems"][0]["message"]
    )


def test_without_a_runtime_ref_the_trainjob_is_read_as_before() -> None:
    obj = trainjob({"numNodes": 2, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2}}})
    del obj["spec"]["runtimeRef"]
    view = describe(obj, claims=ClaimObjects([runtime()]))
    assert (view["problems"], view["pods"], view["gpus"]["total"]) == ([], 2, 4)
    assert [c["path"] for c in view["containers"]] == ["spec.trainer"]


def test_patches_aimed_at_a_runtime_job_place_its_pods() -> None:
    obj = trainjob({"numNodes": 2})
    pinned = {"nodeSelector": {"topology.kubernetes.io/region": "eu-west-1"}}
    obj["spec"]["podSpecOverrides"] = [
        {"targetJobs": [{"name": "node"}, {"name": "model-initializer"}], **pinned}
    ]
    view = describe(obj, claims=ClaimObjects([runtime()]))
    assert [t["regions"]["allowed"] for t in view["podTemplates"]] == [["eu-west-1"], ["eu-west-1"]]
    assert view["regions"]["allPinned"] is True


def test_a_runtime_named_twice_resolves_to_the_later_one() -> None:
    first, second = runtime(gpus=1, init_gpus=0), runtime(gpus=2, init_gpus=0)
    for objects, per_node in (([first, second], 2), ([second, first], 1)):
        view = describe(trainjob({"numNodes": 4}), claims=ClaimObjects(objects))
        assert view["gpus"]["total"] == 4 * per_node


def test_a_runtime_with_a_hundred_thousand_replicated_jobs_is_read_up_to_the_cap() -> None:
    hostile = runtime(init_gpus=0)
    node = hostile["spec"]["template"]["spec"]["replicatedJobs"][1]
    hostile["spec"]["template"]["spec"]["replicatedJobs"] = [node] * 100_000
    view = describe(trainjob({"numNodes": 1}), claims=ClaimObjects([hostile]))
    assert len(view["podTemplates"]) == MAX_RUNTIME_JOBS
    assert view["problems"] == [
        {
            "path": f"{CLUSTER}.spec.template.spec.replicatedJobs",
            "message": f"100000 replicated jobs, more than {MAX_RUNTIME_JOBS} are read; the pods of the rest are"
            " not counted",
        }
    ]


def test_huge_replicas_in_a_runtime_saturate_and_are_problems() -> None:
    hostile = runtime()
    init_job = hostile["spec"]["template"]["spec"]["replicatedJobs"][0]
    init_job["replicas"] = 2**31 - 1
    init_job["template"]["spec"]["parallelism"] = 2**31 - 1
    view = describe(trainjob({"numNodes": 2}), claims=ClaimObjects([hostile]))
    assert view["podTemplates"][0]["replicas"] == (2**31 - 1) ** 2
    assert view["gpus"]["total"] == (2**31 - 1) ** 2 + 8
    hostile["spec"]["template"]["spec"]["replicatedJobs"][0]["replicas"] = 10**40
    view = describe(trainjob({"numNodes": 2}), claims=ClaimObjects([hostile]))
    assert view["problems"][0]["path"] == f"{CLUSTER}.spec.template.spec.replicatedJobs[0].replicas"
    assert view["pods"] <= INT64_MAX


def test_a_runtime_ref_without_a_name_is_a_problem() -> None:
    for ref in ({}, {"name": ["torch-gpu"]}, {"name": ""}):
        obj = trainjob({"numNodes": 2})
        obj["spec"]["runtimeRef"] = ref
        view = describe(obj, claims=ClaimObjects([runtime()]))
        assert view["problems"] == [
            {
                "path": "spec.runtimeRef.name",
                "message": "runtimeRef names no ClusterTrainingRuntime: the pods it would give this TrainJob"
                " cannot be counted",
            }
        ]


def test_the_runtimes_held_are_capped_and_a_held_one_is_still_replaced() -> None:
    many = [runtime(name=f"r{i}", init_gpus=0) for i in range(MAX_RUNTIMES + 1)]
    index = ClaimObjects([*many, runtime(name="r0", gpus=8, init_gpus=0)])
    assert index.runtime("ClusterTrainingRuntime", "", f"r{MAX_RUNTIMES}") is None  # past the cap
    held = index.runtime("ClusterTrainingRuntime", "", "r0")
    assert held is not None and held["spec"]["template"]["spec"]["replicatedJobs"][1]["template"]["spec"][
        "template"
    ]["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 8}}
    view = describe(trainjob({"numNodes": 1}, name=f"r{MAX_RUNTIMES}"), claims=index)
    assert view["problems"][0]["message"].startswith(f"ClusterTrainingRuntime r{MAX_RUNTIMES} not found")


def test_a_runtime_of_odd_shapes_is_read_without_crashing() -> None:
    odd_container = {"name": ["node"], "env": [{"name": ["STORAGE_URI"]}, "x", None], "resources": "lots"}
    shapes: list[Any] = [
        {"replicatedJobs": "many"},
        {"replicatedJobs": [None, 7, {"name": {"a": 1}, "template": []}]},
        {
            "replicatedJobs": [
                {
                    "name": "node",
                    "template": {"spec": {"template": {"spec": {"containers": [odd_container, 3]}}}},
                }
            ]
        },
    ]
    for shape in shapes:
        hostile = runtime()
        hostile["spec"]["template"]["spec"] = shape
        obj = trainjob({"numNodes": 2, "env": [{"name": ["x"]}], "resourcesPerNode": "x"})
        obj["spec"]["initializer"] = {"model": {"storageUri": "hf://acme/m"}}
        view = describe(obj, claims=ClaimObjects([hostile]))
        assert view["gpus"]["total"] == 0
