"""The in-cluster inventory against a fake API server: list, watch, 410 Gone and dropped watches."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from policyengine.workloads import ClaimObjects, DeviceMemory, describe
from policyengine.workloads.volumes import StorageClasses
from tests.unit.webhook.fake_apiserver import FakeAPIServer
from webhook.cluster import ClusterInventory, api_from_config


def _wait(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def relists() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def inventory(fake: FakeAPIServer, relists: list[tuple[str, str]]) -> Iterator[ClusterInventory]:
    fake.put("namespaces", "train", metadata={"labels": {"policyengine.io/team": "ml"}})
    fake.put(
        "pods",
        "p1",
        "train",
        spec={"containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
        status={"phase": "Running"},
    )
    inv = ClusterInventory(
        api_from_config(host=f"http://127.0.0.1:{fake.port}"),
        watch_seconds=5,
        backoff=(0.05, 0.2),
        on_relist=lambda resource, reason: relists.append((resource, reason)),
    )
    assert inv.status()["ready"] is False
    inv.start()
    _wait(lambda: inv.status()["ready"])
    yield inv
    inv.stop()


def test_the_first_list_syncs_namespaces_and_pods(inventory: ClusterInventory) -> None:
    snapshot = inventory.current()
    assert snapshot.namespaces["train"]["metadata"]["labels"] == {"policyengine.io/team": "ml"}
    assert snapshot.namespaces["train"]["kind"] == "Namespace"  # list items carry no kind: it is added
    (pod,) = snapshot.objects
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "p1"
    status = inventory.status()
    assert status["resources"]["pods"]["synced"] and status["resources"]["namespaces"]["objects"] == 1


def test_watch_events_keep_the_inventory_current(fake: FakeAPIServer, inventory: ClusterInventory) -> None:
    fake.put("namespaces", "serve")
    fake.put("pods", "p2", "serve", spec={"containers": []})
    fake.delete("pods", "p1", "train")
    _wait(lambda: "serve" in inventory.current().namespaces)
    _wait(lambda: [p["metadata"]["name"] for p in inventory.current().objects] == ["p2"])
    fake.put("namespaces", "serve", metadata={"labels": {"policyengine.io/residency": "eu"}})
    _wait(lambda: inventory.current().namespaces["serve"]["metadata"].get("labels") is not None)


def test_a_410_gone_relists(
    fake: FakeAPIServer, inventory: ClusterInventory, relists: list[tuple[str, str]]
) -> None:
    lists_before = fake.lists["pods"]
    fake.compact()  # history gone: the next watch from our version gets 410
    fake.put("pods", "p3", "train", spec={"containers": []})
    fake.end_watches()  # the client resumes from its version, which is gone now
    _wait(lambda: ("pods", "gone") in relists)
    assert fake.lists["pods"] > lists_before
    _wait(lambda: "p3" in {p["metadata"]["name"] for p in inventory.current().objects})


def test_a_dropped_watch_relists_and_misses_nothing(
    fake: FakeAPIServer, inventory: ClusterInventory, relists: list[tuple[str, str]]
) -> None:
    # Ready means listed; a watch may not have reached the server yet, and one opened after the drop
    # would never see it: wait for both watches to be open first.
    _wait(lambda: all(fake.watches[r] >= 1 for r in ("namespaces", "pods")))
    fake.drop_watches()
    fake.put("namespaces", "late")
    _wait(lambda: ("namespaces", "error") in relists)
    _wait(lambda: "late" in inventory.current().namespaces)
    assert inventory.status()["ready"] is True


def test_an_unreachable_api_server_is_not_ready_with_the_reason() -> None:
    inv = ClusterInventory(api_from_config(host="http://127.0.0.1:9"), backoff=(0.05, 0.1))
    inv.start()
    try:
        _wait(lambda: "lastError" in inv.status()["resources"]["pods"])
        status = inv.status()
        assert status["ready"] is False and "waiting for the first list" in status["reason"]
    finally:
        inv.stop()


TEMPLATE_SPEC = {
    "spec": {"devices": {"requests": [{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}
}


def test_dra_claims_and_templates_are_listed_and_watched(
    fake: FakeAPIServer, inventory: ClusterInventory
) -> None:
    fake.put("resourceclaimtemplates", "eight", "train", spec=TEMPLATE_SPEC)
    fake.put("resourceclaims", "shared", "train", spec=TEMPLATE_SPEC["spec"])
    _wait(lambda: len(inventory.current().objects) == 3)
    by_kind = {o["kind"]: o for o in inventory.current().objects}
    assert by_kind["ResourceClaimTemplate"]["apiVersion"] == "resource.k8s.io/v1"
    assert by_kind["ResourceClaim"]["metadata"]["name"] == "shared"
    fake.delete("resourceclaimtemplates", "eight", "train")
    _wait(lambda: len(inventory.current().objects) == 2)
    status = inventory.status()["resources"]
    assert status["resourceclaims"]["synced"] and status["resourceclaimtemplates"]["objects"] == 0


def test_device_classes_are_listed_and_watched(fake: FakeAPIServer, inventory: ClusterInventory) -> None:
    fake.put("deviceclasses", "gpu.nvidia.com", spec={"extendedResourceName": "example.com/gpu"})
    _wait(lambda: any(o["kind"] == "DeviceClass" for o in inventory.current().objects))
    (found,) = [o for o in inventory.current().objects if o["kind"] == "DeviceClass"]
    assert found["apiVersion"] == "resource.k8s.io/v1"
    assert found["spec"]["extendedResourceName"] == "example.com/gpu"
    assert inventory.status()["resources"]["deviceclasses"]["synced"]


def test_dra_claims_are_read_at_the_version_the_cluster_serves() -> None:
    fake = FakeAPIServer(dra_versions=("v1beta1",))
    fake.put("resourceclaimtemplates", "one", "train", spec=TEMPLATE_SPEC)
    fake.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        (template,) = inv.current().objects
        # Listed items carry no apiVersion: the version found served is put on them.
        assert (template["kind"], template["apiVersion"]) == (
            "ResourceClaimTemplate",
            "resource.k8s.io/v1beta1",
        )
    finally:
        inv.stop()
        fake.stop()


def test_a_cluster_without_dra_is_ready_with_no_claims() -> None:
    fake = FakeAPIServer(dra_versions=())
    fake.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        assert inv.current().objects == ()
        assert inv.status()["resources"]["resourceclaims"]["lastError"] == "not served by the API server"
    finally:
        inv.stop()
        fake.stop()


def test_kueue_queues_and_flavors_are_listed_and_watched() -> None:
    fake = FakeAPIServer(kueue_versions=("v1beta2",))
    fake.put("clusterqueues", "cq", spec={"resourceGroups": []})
    fake.put("localqueues", "q", "train", spec={"clusterQueue": "cq"})
    fake.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"] and len(inv.current().objects) == 2)
        by_kind = {o["kind"]: o for o in inv.current().objects}
        assert by_kind["LocalQueue"]["apiVersion"] == "kueue.x-k8s.io/v1beta2"
        assert by_kind["LocalQueue"]["spec"]["clusterQueue"] == "cq"
        fake.put("resourceflavors", "h100", spec={"nodeLabels": {"nvidia.com/gpu.product": "H100"}})
        _wait(lambda: len(inv.current().objects) == 3)
        assert inv.status()["resources"]["resourceflavors"]["synced"]
    finally:
        inv.stop()
        fake.stop()


def test_a_cluster_without_kueue_is_ready_with_no_queues(
    fake: FakeAPIServer, inventory: ClusterInventory
) -> None:
    _wait(lambda: inventory.status()["ready"])
    assert inventory.status()["resources"]["clusterqueues"]["lastError"] == "not served by the API server"


def test_pod_groups_are_listed_and_watched_at_the_version_served() -> None:
    fake = FakeAPIServer(scheduling_versions=("v1alpha3",))
    fake.put(
        "podgroups", "group-0", "train", spec={"resourceClaims": [{"name": "g", "resourceClaimName": "c"}]}
    )
    fake.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{fake.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        (group,) = inv.current().objects
        assert (group["kind"], group["apiVersion"]) == ("PodGroup", "scheduling.k8s.io/v1alpha3")
        fake.put("podgroups", "group-1", "train", spec={})
        _wait(lambda: len(inv.current().objects) == 2)
        fake.delete("podgroups", "group-0", "train")
        _wait(lambda: [o["metadata"]["name"] for o in inv.current().objects] == ["group-1"])
    finally:
        inv.stop()
        fake.stop()
    # A cluster without the scheduling API has no PodGroups, and is ready.
    bare = FakeAPIServer(scheduling_versions=())
    bare.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{bare.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        assert inv.status()["resources"]["podgroups"]["lastError"] == "not served by the API server"
    finally:
        inv.stop()
        bare.stop()


def test_resource_slices_are_listed_and_watched(fake: FakeAPIServer, inventory: ClusterInventory) -> None:
    device = {"name": "gpu-0", "capacity": {"memory": {"value": "80Gi"}}}
    fake.put(
        "resourceslices",
        "node-a",
        spec={"driver": "gpu.nvidia.com", "pool": {"name": "a"}, "devices": [device]},
    )
    _wait(lambda: any(o["kind"] == "ResourceSlice" for o in inventory.current().objects))
    (found,) = [o for o in inventory.current().objects if o["kind"] == "ResourceSlice"]
    assert found["apiVersion"] == "resource.k8s.io/v1"
    assert DeviceMemory(inventory.current().objects).allocated("gpu.nvidia.com", "a", "gpu-0") == 80 * 2**30
    fake.delete("resourceslices", "node-a")
    _wait(lambda: not any(o["kind"] == "ResourceSlice" for o in inventory.current().objects))


def test_storage_classes_are_listed_and_watched(fake: FakeAPIServer, inventory: ClusterInventory) -> None:
    # A generic ephemeral volume of a StorageClass naming an existing blob container reads that container.
    fake.put(
        "storageclasses",
        "blob-raw",
        provisioner="blob.csi.azure.com",
        parameters={"storageAccount": "acmeus", "containerName": "raw"},
    )
    _wait(lambda: any(o["kind"] == "StorageClass" for o in inventory.current().objects))
    template = {"spec": {"storageClassName": "blob-raw"}}
    pod = {
        "containers": [{"name": "c", "image": "x"}],
        "volumes": [{"name": "v", "ephemeral": {"volumeClaimTemplate": template}}],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": pod}},
    }
    classes = StorageClasses(inventory.current().objects)
    assert [d["uri"] for d in describe(job, storage_classes=classes)["dataLocations"]] == ["az://acmeus/raw/"]
    fake.delete("storageclasses", "blob-raw")
    _wait(lambda: not any(o["kind"] == "StorageClass" for o in inventory.current().objects))


JOB_WITH_CLAIMS = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "train", "namespace": "eu-ml"},
    "spec": {
        "template": {
            "spec": {
                "containers": [{"name": "c", "image": "x"}],
                "volumes": [
                    {"name": "raw", "persistentVolumeClaim": {"claimName": "raw"}},
                    {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}},
                ],
            }
        }
    },
}


def _claim_view(inventory: ClusterInventory) -> dict[str, object]:
    return describe(JOB_WITH_CLAIMS, claims=ClaimObjects(inventory.current().objects))


def test_claims_volumes_and_datasets_are_listed_and_watched(
    fake: FakeAPIServer, inventory: ClusterInventory
) -> None:
    csi = {"driver": "s3.csi.aws.com", "volumeHandle": "h", "volumeAttributes": {"bucketName": "acme-us-raw"}}
    fake.put("persistentvolumes", "raw-pv", spec={"csi": csi, "mountOptions": ["prefix train/"]})
    fake.put("persistentvolumeclaims", "raw", "eu-ml", spec={"storageClassName": "", "volumeName": "raw-pv"})
    fake.put("datasets", "cache", "eu-ml", spec={"mounts": [{"mountPoint": "oss://acme-cn/imagenet/"}]})
    _wait(lambda: len(_claim_view(inventory)["dataLocations"]) == 2)  # type: ignore[arg-type]
    view = _claim_view(inventory)
    assert view["dataLocations"] == [
        {
            "uri": "s3://acme-us-raw/train",
            "path": "spec.template.spec.volumes[0]",
            "source": "claim",
            "kind": "data",
        },
        {
            "uri": "oss://acme-cn/imagenet/",
            "path": "spec.template.spec.volumes[1]",
            "source": "dataset",
            "kind": "data",
        },
    ]
    assert view["dataProblems"] == []
    kinds = {o["kind"]: o["apiVersion"] for o in inventory.current().objects}
    assert kinds["Dataset"] == "data.fluid.io/v1alpha1" and kinds["PersistentVolume"] == "v1"
    fake.delete("persistentvolumes", "raw-pv")  # the claim's volume is gone: its data cannot be located
    _wait(lambda: bool(_claim_view(inventory)["dataProblems"]))
    assert _claim_view(inventory)["dataProblems"] == [
        {"path": "spec.template.spec.volumes[0]", "message": "PersistentVolume raw-pv of claim raw not found"}
    ]
    status = inventory.status()["resources"]
    assert all(status[r]["synced"] for r in ("persistentvolumeclaims", "persistentvolumes", "datasets"))


def test_a_cluster_without_fluid_is_ready_with_no_datasets() -> None:
    bare = FakeAPIServer(fluid_versions=())
    bare.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{bare.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        assert inv.status()["resources"]["datasets"]["lastError"] == "not served by the API server"
    finally:
        inv.stop()
        bare.stop()


TRAINJOB = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "TrainJob",
    "metadata": {"name": "tune", "namespace": "team-a"},
    "spec": {"runtimeRef": {"name": "torch-gpu"}, "trainer": {"numNodes": 3}},
}


def _runtime_spec(gpus: int) -> dict[str, object]:
    node = {"name": "node", "image": "pytorch/pytorch", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
    job = {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [node]}}}}}
    return {"mlPolicy": {"numNodes": 1}, "template": {"spec": {"replicatedJobs": [job]}}}


def _trainjob_view(inventory: ClusterInventory, obj: dict[str, object] = TRAINJOB) -> dict[str, object]:
    return describe(obj, claims=ClaimObjects(inventory.current().objects))


def test_training_runtimes_are_listed_and_watched(fake: FakeAPIServer, inventory: ClusterInventory) -> None:
    assert _trainjob_view(inventory)["problems"]  # not in the cluster: a problem, not 0
    fake.put("clustertrainingruntimes", "torch-gpu", spec=_runtime_spec(4))
    _wait(lambda: _trainjob_view(inventory)["gpus"]["total"] == 12)  # type: ignore[index]
    assert _trainjob_view(inventory)["problems"] == []
    kinds = {o["kind"]: o["apiVersion"] for o in inventory.current().objects}
    assert kinds["ClusterTrainingRuntime"] == "trainer.kubeflow.org/v1alpha1"
    fake.put("clustertrainingruntimes", "torch-gpu", spec=_runtime_spec(8))  # MODIFIED
    _wait(lambda: _trainjob_view(inventory)["gpus"]["total"] == 24)  # type: ignore[index]
    # A namespaced runtime is found for the TrainJobs of its own namespace only.
    namespaced = {
        **TRAINJOB,
        "spec": {**TRAINJOB["spec"], "runtimeRef": {"name": "r", "kind": "TrainingRuntime"}},
    }  # type: ignore[dict-item]
    fake.put("trainingruntimes", "r", "team-b", spec=_runtime_spec(2))
    fake.put("trainingruntimes", "r", "team-a", spec=_runtime_spec(1))
    _wait(lambda: _trainjob_view(inventory, namespaced)["gpus"]["total"] == 3)  # type: ignore[index]
    fake.delete("clustertrainingruntimes", "torch-gpu")
    _wait(lambda: bool(_trainjob_view(inventory)["problems"]))
    assert "ClusterTrainingRuntime torch-gpu not found" in _trainjob_view(inventory)["problems"][0]["message"]  # type: ignore[index]
    status = inventory.status()["resources"]
    assert all(status[r]["synced"] for r in ("trainingruntimes", "clustertrainingruntimes"))


def test_a_cluster_without_trainer_is_ready_with_no_runtimes() -> None:
    bare = FakeAPIServer(trainer_versions=())
    bare.start()
    inv = ClusterInventory(api_from_config(host=f"http://127.0.0.1:{bare.port}"), watch_seconds=5)
    inv.start()
    try:
        _wait(lambda: inv.status()["ready"])
        assert (
            inv.status()["resources"]["clustertrainingruntimes"]["lastError"]
            == "not served by the API server"
        )
    finally:
        inv.stop()
        bare.stop()
