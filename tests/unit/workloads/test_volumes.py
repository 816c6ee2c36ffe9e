"""Bucket CSI volumes as data locations: each driver of the table, the kinds whose pods mount them, the
buckets a manifest does not name (unknown, never skipped) and hostile volume lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policyengine.model import Inventory
from policyengine.org import UNKNOWN_REGION, OrgRules
from policyengine.workloads import describe
from policyengine.workloads.volumes import BUCKET_DRIVERS, MAX_BUCKET_VOLUMES, StorageClasses, bucket_location
from tests.helpers import ACME_CONFIG, run_json

IMAGE = "registry.acme.internal/train@sha256:" + "a" * 64


def csi(driver: str, **attributes: Any) -> dict[str, Any]:
    return {"name": "data", "csi": {"driver": driver, "volumeAttributes": attributes}}


def pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [{"name": "main", "image": IMAGE}], "volumes": list(volumes)}


def job(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {"template": {"spec": pod(*volumes)}},
    }


def csi_locations(obj: dict[str, Any]) -> list[dict[str, str]]:
    return [d for d in describe(obj)["dataLocations"] if d["source"] == "csiVolume"]


# --- each driver ------------------------------------------------------------------------------------------


def test_the_table_holds_the_three_bucket_drivers() -> None:
    assert set(BUCKET_DRIVERS) == {"s3.csi.aws.com", "gcsfuse.csi.storage.gke.io", "blob.csi.azure.com"}


def test_an_s3_volume_is_its_bucket() -> None:
    assert csi_locations(job(csi("s3.csi.aws.com", bucketName="acme-us-raw-data"))) == [
        {
            "uri": "s3://acme-us-raw-data/",
            "path": "spec.template.spec.volumes[0].csi",
            "source": "csiVolume",
            "kind": "data",
            "driver": "s3.csi.aws.com",
        }
    ]


@pytest.mark.parametrize(
    "option", ["prefix datasets/2026/", "prefix=datasets/2026", "--prefix datasets/2026/"]
)
def test_an_s3_prefix_mount_option_narrows_the_location(option: str) -> None:
    # Mountpoint's prefix is a mount option (a PersistentVolume's spec.mountOptions).
    found = bucket_location("s3.csi.aws.com", {"bucketName": "b"}, ["allow-delete", option], "p")
    assert found is not None and found["uri"] == "s3://b/datasets/2026/"


def test_an_unreadable_s3_prefix_leaves_the_whole_bucket() -> None:
    found = bucket_location("s3.csi.aws.com", {"bucketName": "b"}, ["prefix {{ .Values.dir }}"], "p")
    assert found is not None and found["uri"] == "s3://b/"


@pytest.mark.parametrize("options", ["implicit-dirs,only-dir=raw/2026", "only-dir:raw/2026/,uid=1001"])
def test_a_gcsfuse_volume_is_its_bucket_and_only_dir(options: str) -> None:
    (found,) = csi_locations(
        job(csi("gcsfuse.csi.storage.gke.io", bucketName="acme-us-data", mountOptions=options))
    )
    assert found["uri"] == "gs://acme-us-data/raw/2026/"
    assert "unknown" not in found


def test_an_azure_blob_volume_is_its_account_and_container() -> None:
    (found,) = csi_locations(job(csi("blob.csi.azure.com", storageAccount="acmeeu", containerName="raw")))
    assert found["uri"] == "az://acmeeu/raw/"
    # The driver reads its parameter names case-insensitively.
    (found,) = csi_locations(job(csi("blob.csi.azure.com", storageaccount="acmeeu", CONTAINERNAME="raw")))
    assert found["uri"] == "az://acmeeu/raw/"


def test_a_driver_not_in_the_table_is_not_a_data_location() -> None:
    obj = job(csi("secrets-store.csi.k8s.io", secretProviderClass="kv"), csi("ebs.csi.aws.com"))
    assert csi_locations(obj) == []


# --- buckets the manifest does not name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "uri", "why"),
    [
        (csi("s3.csi.aws.com", bucketName="{{ .Values.bucket }}"), "s3://?", "is not a bucket name"),
        (csi("s3.csi.aws.com", bucketName="$(BUCKET)"), "s3://?", "is not a bucket name"),
        (csi("s3.csi.aws.com"), "s3://?", "bucketName None"),
        ({"csi": {"driver": "s3.csi.aws.com", "volumeAttributes": "x"}}, "s3://?", "bucketName None"),
        (csi("gcsfuse.csi.storage.gke.io", bucketName="_"), "gs://?", "does not name one bucket"),
        (
            csi("blob.csi.azure.com", containerName="raw", secretName="azure-secret"),
            "az://?",
            "held in a Secret",
        ),
        (csi("blob.csi.azure.com", storageAccount="acmeeu"), "az://?", "containerName None"),
    ],
)
def test_an_unreadable_bucket_is_an_unknown_location(volume: dict[str, Any], uri: str, why: str) -> None:
    (found,) = csi_locations(job(volume))
    assert found["uri"] == uri
    assert why in found["unknown"]


def test_an_unknown_bucket_has_no_region_whatever_prefix_is_registered() -> None:
    # Even a catch-all prefix for the scheme does not place a bucket whose name cannot be read.
    rules = OrgRules.from_config(
        {"spec": {"residency": {"dataLocations": [{"prefix": "s3://", "region": "eu-west-1"}]}}}
    )
    data = describe(job(csi("s3.csi.aws.com", bucketName="${BUCKET}"), csi("s3.csi.aws.com", bucketName="b")))
    view = rules.view("ns", {}, Inventory(), {}, data["dataLocations"])
    assert [(d["uri"], d["region"]) for d in view["residency"]["dataLocations"]] == [
        ("s3://?", UNKNOWN_REGION),
        ("s3://b/", "eu-west-1"),
    ]


# --- every kind whose pods mount volumes ------------------------------------------------------------------

S3 = csi("s3.csi.aws.com", bucketName="acme-us-raw-data")


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"apiVersion": "v1", "kind": "Pod", "spec": pod(S3)}, "spec.volumes[0].csi"),
        (
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "spec": {"jobTemplate": {"spec": {"template": {"spec": pod(S3)}}}},
            },
            "spec.jobTemplate.spec.template.spec.volumes[0].csi",
        ),
        (
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": pod(S3)}}},
            "spec.template.spec.volumes[0].csi",
        ),
        (
            {
                "apiVersion": "kubeflow.org/v1",
                "kind": "PyTorchJob",
                "spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": pod(S3)}}}},
            },
            "spec.pytorchReplicaSpecs.Worker.template.spec.volumes[0].csi",
        ),
        (
            {
                "apiVersion": "jobset.x-k8s.io/v1alpha2",
                "kind": "JobSet",
                "spec": {
                    "replicatedJobs": [{"name": "w", "template": {"spec": {"template": {"spec": pod(S3)}}}}]
                },
            },
            "spec.replicatedJobs[0].template.spec.template.spec.volumes[0].csi",
        ),
        (
            {
                "apiVersion": "ray.io/v1",
                "kind": "RayCluster",
                "spec": {"headGroupSpec": {"template": {"spec": pod(S3)}}},
            },
            "spec.headGroupSpec.template.spec.volumes[0].csi",
        ),
        (
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "spec": {"predictor": {"containers": [{"name": "c", "image": IMAGE}], "volumes": [S3]}},
            },
            "spec.predictor.volumes[0].csi",
        ),
        (
            {
                "apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "TrainJob",
                "spec": {
                    "trainer": {"image": IMAGE},
                    "podSpecOverrides": [{"targetJobs": [{"name": "dataset-initializer"}], "volumes": [S3]}],
                },
            },
            "spec.podSpecOverrides[0].volumes[0].csi",
        ),
    ],
)
def test_bucket_volumes_are_read_in_every_kind(obj: dict[str, Any], path: str) -> None:
    obj["metadata"] = {"name": "w", "namespace": "ns"}
    assert [(d["uri"], d["path"]) for d in csi_locations(obj)] == [("s3://acme-us-raw-data/", path)]


# --- generic ephemeral volumes: the StorageClass of the inventory names the driver ------------------------


def storage_class(name: str, provisioner: str, default: bool = False, **parameters: str) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": provisioner,
        "parameters": parameters,
        "mountOptions": ["-o allow_other"],
    }


def ephemeral(storage_class_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class_name is not None:
        spec["storageClassName"] = storage_class_name
    return {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}


CLASSES = StorageClasses(
    [
        storage_class("blob-raw", "blob.csi.azure.com", storageAccount="acmeus", containerName="raw"),
        storage_class(
            "blob-secret",
            "blob.csi.azure.com",
            containerName="raw",
            **{"csi.storage.k8s.io/node-stage-secret-name": "azure-secret"},
        ),
        storage_class("blob-new", "blob.csi.azure.com", skuName="Standard_LRS"),
        storage_class("gp3", "ebs.csi.aws.com", default=True),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "blob-raw"}},
    ]
)


@pytest.mark.parametrize(
    ("class_name", "uri"),
    [
        ("blob-raw", "az://acmeus/raw/"),  # a class naming an existing container: that container
        ("blob-secret", "az://?"),  # ... whose account is in a Secret: unknown
        ("blob-new", None),  # the driver creates a container: new storage, no dataset
        ("gp3", None),  # not a bucket driver
        (None, None),  # the default class (gp3)
        ("absent", None),  # not in the inventory: not read
    ],
)
def test_a_generic_ephemeral_volume_is_read_through_its_storage_class(
    class_name: str | None, uri: str | None
) -> None:
    found = [
        d
        for d in describe(job(ephemeral(class_name)), storage_classes=CLASSES)["dataLocations"]
        if d["source"] == "csiVolume"
    ]
    assert [d["uri"] for d in found] == ([uri] if uri else [])
    for d in found:
        assert d["path"] == "spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate"


def test_the_default_storage_class_of_a_bucket_driver_is_read() -> None:
    classes = StorageClasses(
        [storage_class("blob", "blob.csi.azure.com", True, storageAccount="a1", containerName="c1")]
    )
    (found,) = describe(job(ephemeral(None)), storage_classes=classes)["dataLocations"]
    assert found["uri"] == "az://a1/c1/"


def test_generic_ephemeral_bucket_volumes_are_read_by_check_with_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "cluster.yaml"
    inventory.write_text(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: blob-raw}\n"
        "provisioner: blob.csi.azure.com\nparameters: {storageAccount: acmeus, containerName: raw}\n"
    )
    manifest = tmp_path / "job.yaml"
    job_doc = job(ephemeral("blob-raw"))
    job_doc["metadata"]["labels"] = {"policyengine.io/residency": "eu"}
    job_doc["spec"]["template"]["spec"]["nodeSelector"] = {"topology.kubernetes.io/region": "eu-west-1"}
    manifest.write_text(json.dumps(job_doc))
    code, report = run_json(
        ["check", "--config", ACME_CONFIG, str(manifest), "--inventory", str(inventory)], capsys, monkeypatch
    )
    assert code == 1
    (denied,) = [r for r in report["results"] if r["policy"] == "residency-data-locations"]
    assert denied["message"].startswith(
        "the region of az://acmeus/raw/ (at spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate) is unknown"
    )
    # Without the inventory the StorageClass is not known: the volume is not read.
    code, report = run_json(["check", "--config", ACME_CONFIG, str(manifest)], capsys, monkeypatch)
    assert not [r for r in report["results"] if r["policy"] == "residency-data-locations"]


# --- hostile input ---------------------------------------------------------------------------------------


def test_ten_thousand_bucket_volumes_report_a_bounded_list_ending_in_an_unknown_location() -> None:
    volumes = [csi("s3.csi.aws.com", bucketName=f"b{i}") for i in range(10_000)]
    found = csi_locations(job(*volumes))
    assert len(found) == MAX_BUCKET_VOLUMES + 1
    last = found[-1]
    assert last["uri"] == "csi://?" and "the rest are not read" in last["unknown"]
    assert last["path"] == f"spec.template.spec.volumes[{MAX_BUCKET_VOLUMES}]"


def test_ten_thousand_other_volumes_add_nothing() -> None:
    volumes = [{"name": f"v{i}", "emptyDir": {}} for i in range(10_000)]
    assert csi_locations(job(*volumes, csi("s3.csi.aws.com", bucketName="b"))) == [
        {
            "uri": "s3://b/",
            "path": "spec.template.spec.volumes[10000].csi",
            "source": "csiVolume",
            "kind": "data",
            "driver": "s3.csi.aws.com",
        }
    ]


def test_huge_attributes_are_unknown_and_not_copied() -> None:
    huge = "a" * 1_000_000
    obj = job(
        csi("s3.csi.aws.com", bucketName=huge),
        csi("gcsfuse.csi.storage.gke.io", bucketName="g", mountOptions="only-dir=" + huge),
        csi("gcsfuse.csi.storage.gke.io", bucketName="h", mountOptions=",".join(["x"] * 200_000)),
    )
    s3, gcs, many = csi_locations(obj)
    assert s3["uri"] == "s3://?" and len(s3["unknown"]) < 200
    assert gcs["uri"] == "gs://g/"  # an over-long only-dir is not read: the whole bucket
    assert many["uri"] == "gs://h/"
    assert max(len(v) for d in (s3, gcs, many) for v in d.values()) < 200


# --- through check ---------------------------------------------------------------------------------------


def test_eu_jobs_mounting_us_buckets_are_denied_by_check(
    repo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An EU namespace; a Job mounting the S3 bucket acme-us-raw-data (no prefix places it) and one
    # mounting a gcsfuse bucket the examples' config places in us-central1; one reading an EU bucket.
    example = repo_root / "examples" / "manifests" / "mounted-buckets.yaml"
    config = repo_root / "examples" / "governance.yaml"
    code, report = run_json(["check", "--config", str(config), str(example)], capsys, monkeypatch)
    assert code == 1
    residency = {
        (r["resource"]["name"], r["outcome"]): r["message"]
        for r in report["results"]
        if r["policy"] == "residency-data-locations"
    }
    # The job reading the EU bucket has no finding (the report lists findings only).
    assert set(residency) == {("raw-ingest", "fail"), ("feature-build", "fail")}
    assert residency[("raw-ingest", "fail")].startswith(
        "the region of s3://acme-us-raw-data/ (at spec.template.spec.volumes[0].csi) is unknown"
    )
    assert residency[("feature-build", "fail")].startswith(
        "gs://acme-us-data/features/ (at spec.template.spec.volumes[0].csi) is stored in us-central1"
    )
