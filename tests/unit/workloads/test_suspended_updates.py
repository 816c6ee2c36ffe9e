"""Kubernetes 1.36 (KEP-5440, beta) lets a suspended Job's pod-template resources change, GPUs included:
such an UPDATE, and the same change on the other workload kinds (a JobSet's replicated Job, a PyTorchJob's
replica template, a TrainJob's resourcesPerNode), is charged what it adds (new total minus old), also when
the Job is unsuspended in the same UPDATE."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.model import Request
from tests.unit.workloads.test_charge import INVENTORY, NOW, engine, quota_result, workload  # noqa: F401


def update(new: Any, old: Any) -> Request:
    return replace(request_from_manifest(new, operation="UPDATE"), object=new, old_object=old)


def container(gpus: int) -> dict[str, Any]:
    return {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": gpus}}}


def job(gpus: int, parallelism: int = 2, suspend: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "train"},
        "spec": {
            "suspend": suspend,
            "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container(gpus)]}},
        },
    }


def jobset(gpus: int) -> dict[str, Any]:
    inner = {
        "parallelism": 2,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container(gpus)]}},
    }
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "train", "namespace": "train"},
        "spec": {
            "suspend": True,
            "replicatedJobs": [{"name": "w", "replicas": 1, "template": {"spec": inner}}],
        },
    }


def pytorchjob(gpus: int) -> dict[str, Any]:
    worker = {"replicas": 2, "template": {"spec": {"containers": [container(gpus)]}}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "train"},
        "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Worker": worker}},
    }


def trainjob(gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "train", "namespace": "train"},
        "spec": {
            "suspend": True,
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 2, "resourcesPerNode": {"limits": {"nvidia.com/gpu": gpus}}},
        },
    }


def charge(engine: Engine, request: Request) -> dict[str, Any]:  # noqa: F811
    gpus: dict[str, Any] = workload(engine, request)["gpus"]
    return {"total": gpus["total"], "charge": gpus["charge"]}


def test_a_suspended_job_whose_gpus_grow_is_charged_the_growth(engine: Engine) -> None:  # noqa: F811
    # 2 pods x 2 -> 2 pods x 4 GPUs: 4 -> 8, charged 4. Team ml holds 8 of 16: 8 + 4 = 12 fits.
    request = update(job(4), job(2))
    assert charge(engine, request) == {
        "total": 8,
        "charge": {"total": 4, "byResource": {"nvidia.com/gpu": 4}, "byProduct": {}},
    }
    assert engine.evaluate(request, inventory=INVENTORY, now=NOW).allowed
    # 2 x 1 -> 2 x 5 while suspended: 2 -> 10 adds 8, 8 + 8 = 16 = quota; 2 x 6 adds 10: 18 > 16.
    assert engine.evaluate(update(job(5), job(1)), inventory=INVENTORY, now=NOW).allowed
    outcome, message = quota_result(engine, update(job(6), job(1)))
    assert outcome == "fail"
    assert message == "team ml uses 8 GPUs and Job train adds 10 (it grows to 12): 18 is over the quota of 16"


def test_unsuspending_in_the_same_update_is_charged_the_same(engine: Engine) -> None:  # noqa: F811
    request = update(job(4, suspend=False), job(2, suspend=True))
    assert charge(engine, request)["charge"] == {
        "total": 4,
        "byResource": {"nvidia.com/gpu": 4},
        "byProduct": {},
    }
    outcome, message = quota_result(engine, update(job(6, suspend=False), job(1)))
    assert (outcome, message) == (
        "fail",
        "team ml uses 8 GPUs and Job train adds 10 (it grows to 12): 18 is over the quota of 16",
    )


def test_a_suspended_job_scaled_out_is_charged_the_new_pods(engine: Engine) -> None:  # noqa: F811
    assert charge(engine, update(job(2, parallelism=5), job(2, parallelism=2)))["charge"]["total"] == 6
    # Shrinking the GPUs while suspended adds nothing, so it is never denied.
    shrink = update(job(1), job(4))
    assert charge(engine, shrink)["charge"]["total"] == 0
    assert engine.evaluate(shrink, inventory=INVENTORY, now=NOW).allowed


@pytest.mark.parametrize("build", [jobset, pytorchjob, trainjob], ids=["JobSet", "PyTorchJob", "TrainJob"])
def test_every_workload_kind_is_charged_its_template_growth(engine: Engine, build: Any) -> None:  # noqa: F811
    # 2 pods x 1 -> 2 pods x 3 GPUs: 2 -> 6, charged 4.
    request = update(build(3), build(1))
    assert charge(engine, request) == {
        "total": 6,
        "charge": {"total": 4, "byResource": {"nvidia.com/gpu": 4}, "byProduct": {}},
    }
    # 2 x 1 -> 2 x 6: adds 10, 8 + 10 = 18 > 16, named as the growth.
    outcome, message = quota_result(engine, update(build(6), build(1)))
    assert outcome == "fail"
    assert message.endswith("adds 10 (it grows to 12): 18 is over the quota of 16")


def test_the_old_template_is_read_as_the_new_one_is(engine: Engine) -> None:  # noqa: F811
    # A change that does not touch resources (an annotation) charges nothing, whatever the GPUs.
    new = copy.deepcopy(job(8))
    new["spec"]["template"]["metadata"] = {"annotations": {"kueue.x-k8s.io/admitted": "yes"}}
    assert charge(engine, update(new, job(8)))["charge"]["total"] == 0
