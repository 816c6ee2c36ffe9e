"""Objects that only describe pods another object runs (Kubeflow Trainer runtimes, core PodTemplate) are
checked for GPUs, images and models but never charged against quotas or per-workload limits; Trainer's
initializers name a model (model-initializer) and a data location (dataset-initializer)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.inventory import from_documents
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.workloads import describe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# The shipped defaults' shape: team default has quota 0; a per-workload limit of 1 to show it is not applied.
CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      default: {quota: 0, maxPerWorkload: 1}
  models:
    approvedSources: ["s3://approved-models/"]
"""
MODEL = "hf://meta-llama/Llama-3.2-1B-Instruct"
DATASET = "hf://tatsu-lab/alpaca/data"
NODE = "spec.template.spec.replicatedJobs[2].template.spec.template.spec.containers[0]"


def _job(name: str, container: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "template": {"spec": {"template": {"spec": {"containers": [container]}}}}}


def runtime(kind: str = "ClusterTrainingRuntime") -> dict[str, Any]:
    """Trainer's torchtune-llama3.2-1b runtime, shortened: two initializers and a 2-GPU node."""
    init = "ghcr.io/kubeflow/trainer/{}-initializer"
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": kind,
        "metadata": {"name": "torchtune-llama3.2-1b"},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        _job(
                            "dataset-initializer",
                            {
                                "name": "dataset-initializer",
                                "image": init.format("dataset"),
                                "env": [{"name": "STORAGE_URI", "value": DATASET}],
                            },
                        ),
                        _job(
                            "model-initializer",
                            {
                                "name": "model-initializer",
                                "image": init.format("model"),
                                "env": [{"name": "STORAGE_URI", "value": MODEL}],
                            },
                        ),
                        _job(
                            "node",
                            {
                                "name": "node",
                                "image": "ghcr.io/kubeflow/trainer/torchtune-trainer",
                                "resources": {"limits": {"nvidia.com/gpu": 2}},
                            },
                        ),
                    ]
                }
            },
        },
    }


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    config = tmp_path_factory.mktemp("templates") / "config.yaml"
    config.write_text(CONFIG)
    packs = [str(bundled_policies_dir() / p) for p in ("gpu-quotas", "model-provenance")]
    return Engine(load_policy_set(packs, config_paths=[str(config)], include_bundled=False))


def outcomes(engine: Engine, obj: dict[str, Any]) -> dict[str, str]:
    """Each policy's outcome; "fail" when any of its validations fails."""
    decision = engine.evaluate(request_from_manifest(obj), inventory=from_documents([]), now=NOW)
    out: dict[str, str] = {}
    for r in decision.results:
        if out.get(r.policy) != "fail":
            out[r.policy] = r.outcome.value
    return out


@pytest.mark.parametrize("kind", ["ClusterTrainingRuntime", "TrainingRuntime"])
def test_a_runtime_is_not_charged_but_its_models_and_images_are_checked(engine: Engine, kind: str) -> None:
    view = describe(runtime(kind))
    assert view["isTemplate"] is True
    assert view["gpus"]["total"] == 2  # declared GPUs are still read ...
    assert view["gpus"]["charge"] == {"total": 0, "byResource": {"nvidia.com/gpu": 0}, "byProduct": {}}
    assert view["gpuMemory"]["charge"] == 0
    results = outcomes(engine, runtime(kind))
    # ... but neither quota 0 nor maxPerWorkload 1 applies to pods the runtime does not run.
    assert results["gpu-team-quota"] == "skip"
    assert results["gpu-per-workload-limit"] == "skip"
    assert results["model-approved-source"] == "fail"  # the model-initializer's hf:// model
    assert results["ai-images-pinned-by-digest"] == "fail"  # images without a digest


def test_the_same_pods_in_a_running_kind_are_charged(engine: Engine) -> None:
    # A JobSet with the same replicated jobs runs them: it is charged, and quota 0 denies it.
    obj = runtime()
    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "j", "namespace": "x"},
        "spec": {"replicatedJobs": obj["spec"]["template"]["spec"]["replicatedJobs"]},
    }
    assert describe(jobset)["isTemplate"] is False
    results = outcomes(engine, jobset)
    assert results["gpu-team-quota"] == "fail"
    assert results["gpu-per-workload-limit"] == "fail"
    # A runtime-named kind in another API group is not a template: it cannot borrow the exemption.
    impostor = {**runtime(), "apiVersion": "example.com/v1"}
    assert describe(impostor)["isTemplate"] is False
    assert outcomes(engine, impostor)["gpu-team-quota"] == "fail"


def test_a_core_pod_template_is_read_but_not_charged(engine: Engine) -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "gpu-pod", "namespace": "x"},
        "template": {
            "spec": {"containers": [{"name": "c", "image": "vllm/vllm-openai", "args": ["--model", MODEL]}]}
        },
    }
    obj["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 4}}
    view = describe(obj)
    assert (view["isTemplate"], view["pods"], view["gpus"]["total"]) == (True, 1, 4)
    assert view["gpus"]["charge"]["total"] == 0
    assert [m["path"] for m in view["models"]] == ["template.spec.containers[0].args[1]"]
    results = outcomes(engine, obj)
    assert (results["gpu-team-quota"], results["gpu-per-workload-limit"]) == ("skip", "skip")
    assert results["model-approved-source"] == "fail"


def test_initializers_name_a_model_and_a_data_location() -> None:
    view = describe(runtime())
    model_path = "spec.template.spec.replicatedJobs[1].template.spec.template.spec.containers[0].env[0].value"
    data_path = "spec.template.spec.replicatedJobs[0].template.spec.template.spec.containers[0].env[0].value"
    assert [(m["uri"], m["path"]) for m in view["models"]] == [(MODEL, model_path)]
    assert sorted((d["uri"], d["path"], d["kind"]) for d in view["dataLocations"]) == [
        (MODEL, model_path, "model"),
        (DATASET, data_path, "data"),
    ]


def test_a_storage_uri_of_another_container_is_data_only() -> None:
    obj = runtime()
    jobs = obj["spec"]["template"]["spec"]["replicatedJobs"]
    jobs[1]["template"]["spec"]["template"]["spec"]["containers"][0]["name"] = "downloader"
    view = describe(obj)
    assert view["models"] == []
    assert {d["uri"]: d["kind"] for d in view["dataLocations"]} == {DATASET: "data", MODEL: "data"}


def test_a_model_initializer_with_a_local_path_names_no_model() -> None:
    obj = runtime()
    container = obj["spec"]["template"]["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]
    container["containers"][0]["env"] = [{"name": "STORAGE_URI", "value": "/workspace/model"}, {"name": 1}]
    view = describe(obj)
    assert view["models"] == [] and view["problems"] == []
