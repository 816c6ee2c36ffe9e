"""The data behind persistentVolumeClaim volumes: claim -> PersistentVolume -> bucket, Fluid Datasets,
claims that cannot be found, and the bounds on what a hostile object makes the view read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.persistent import (
    MAX_CLAIM_VOLUMES,
    MAX_DATASET_MOUNTS,
    MAX_OPTIONS,
    bucket_uri,
)

S3_PV: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": {"name": "us-raw-pv"},
    "spec": {
        "capacity": {"storage": "1200Gi"},
        "accessModes": ["ReadOnlyMany"],
        "storageClassName": "",
        "mountOptions": ["allow-delete", "region us-east-1", "prefix raw/"],
        "csi": {
            "driver": "s3.csi.aws.com",
            "volumeHandle": "s3-csi-driver-volume",
            "volumeAttributes": {"bucketName": "acme-us-raw-data"},
        },
    },
}


def _pvc(name: str, namespace: str = "eu-ml", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}, **spec},
    }


def _job(*claims: str, namespace: str = "eu-ml", name: str = "train") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"topology.kubernetes.io/region": "eu-west-1"},
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x"}],
                    "volumes": [
                        {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                        for i, c in enumerate(claims)
                    ],
                }
            }
        },
    }


def _view(job: dict[str, Any], *objects: Any) -> dict[str, Any]:
    return describe(job, claims=ClaimObjects(objects))


# -- the drivers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "handle", "attributes", "options", "uri"),
    [
        ("s3.csi.aws.com", "h", {"bucketName": "b"}, ["prefix raw/"], "s3://b/raw"),
        ("s3.csi.aws.com", "h", {"bucketName": "b"}, ["--prefix=raw/x/"], "s3://b/raw/x"),
        ("s3.csi.aws.com", "h", {"bucketName": "b"}, ["allow-delete", "region us-east-1"], "s3://b"),
        ("s3.csi.aws.com", "b", {}, [], "<bucket of s3.csi.aws.com not readable>"),  # the handle is no bucket
        (
            "s3.csi.aws.com",
            "h",
            {"bucketName": "{{ .Values.bucket }}"},
            [],
            "<bucket of s3.csi.aws.com not readable>",
        ),
        (
            "gcsfuse.csi.storage.gke.io",
            "acme-eu",
            {},
            ["implicit-dirs", "only-dir=tickets"],
            "gs://acme-eu/tickets",
        ),
        ("gcsfuse.csi.storage.gke.io", "acme-eu", {}, ["only-dir:a/b"], "gs://acme-eu/a/b"),
        ("gcsfuse.csi.storage.gke.io", "_", {}, [], "<bucket of gcsfuse.csi.storage.gke.io not readable>"),
        (
            "gcsfuse.csi.storage.gke.io",
            "${BUCKET}",
            {},
            [],
            "<bucket of gcsfuse.csi.storage.gke.io not readable>",
        ),
        ("blob.csi.azure.com", "acct_c", {"storageAccount": "acct", "containerName": "c"}, [], "az://acct/c"),
        ("blob.csi.azure.com", "x", {"storageaccount": "acct", "containername": "c"}, [], "az://acct/c"),
        ("blob.csi.azure.com", "rg#acct#cont#", {}, [], "az://acct/cont"),
        # The account is in a Secret (nodeStageSecretRef): unknown, never skipped.
        (
            "blob.csi.azure.com",
            "pv-blob1",
            {"containerName": "c"},
            [],
            "<bucket of blob.csi.azure.com not readable>",
        ),
        ("ebs.csi.aws.com", "vol-0123", {}, [], None),  # a disk
        ("file.csi.azure.com", "acct_share", {"shareName": "s"}, [], None),
    ],
)
def test_bucket_drivers_map_to_uris(
    driver: str, handle: str, attributes: dict[str, Any], options: list[str], uri: str | None
) -> None:
    assert bucket_uri(driver, handle, attributes, options) == uri


# -- the claim chain ---------------------------------------------------------------------------------


def test_a_claim_bound_by_volume_name_is_its_bucket() -> None:
    view = _view(_job("us-raw"), S3_PV, _pvc("us-raw", storageClassName="", volumeName="us-raw-pv"))
    assert view["dataLocations"] == [
        {
            "uri": "s3://acme-us-raw-data/raw",
            "path": "spec.template.spec.volumes[0]",
            "source": "claim",
            "kind": "data",
        }
    ]
    assert view["dataProblems"] == []


def test_a_volume_pre_bound_to_the_claim_by_claim_ref_is_found() -> None:
    pv = {**S3_PV, "spec": {**S3_PV["spec"], "claimRef": {"namespace": "eu-ml", "name": "raw"}}}
    view = _view(_job("raw"), pv, _pvc("raw", storageClassName=""))
    assert [d["uri"] for d in view["dataLocations"]] == ["s3://acme-us-raw-data/raw"]
    # The same claim name in another namespace is another claim.
    other = _view(_job("raw", namespace="other"), pv, _pvc("raw", "other", storageClassName="gp3"))
    assert other["dataLocations"] == [] and other["dataProblems"] == []


def test_a_dynamically_provisioned_claim_is_a_new_disk_not_data() -> None:
    for claim in (_pvc("scratch", storageClassName="gp3"), _pvc("scratch")):  # named class, default class
        view = _view(_job("scratch"), claim)
        assert view["dataLocations"] == [] and view["dataProblems"] == []


def test_a_claim_bound_to_a_disk_is_not_data() -> None:
    ebs = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-1"}}
    ebs["spec"] = {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}
    view = _view(_job("disk"), ebs, _pvc("disk", storageClassName="gp3", volumeName="pvc-1"))
    assert view["dataLocations"] == [] and view["dataProblems"] == []


def test_claims_and_volumes_not_found_are_data_problems() -> None:
    view = _view(
        _job("nowhere", "lost", "unbound"),
        _pvc("lost", storageClassName="", volumeName="gone-pv"),
        _pvc("unbound", storageClassName=""),
    )
    assert view["dataLocations"] == []
    assert view["dataProblems"] == [
        {
            "path": "spec.template.spec.volumes[0]",
            "message": "PersistentVolumeClaim nowhere not found in namespace eu-ml",
        },
        {
            "path": "spec.template.spec.volumes[1]",
            "message": "PersistentVolume gone-pv of claim lost not found",
        },
        {
            "path": "spec.template.spec.volumes[2]",
            "message": "PersistentVolumeClaim unbound has no storage class and no volume",
        },
    ]


def test_a_fluid_dataset_mount_is_a_data_location_of_its_claim() -> None:
    dataset = {
        "apiVersion": "data.fluid.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "imagenet", "namespace": "eu-ml"},
        "spec": {
            "mounts": [{"mountPoint": "oss://acme-cn/imagenet/", "name": "a"}, {"mountPoint": "s3://b/x"}]
        },
    }
    view = _view(_job("imagenet"), dataset)  # Fluid makes the claim: it need not be known
    assert view["dataLocations"] == [
        {
            "uri": "oss://acme-cn/imagenet/",
            "path": "spec.template.spec.volumes[0]",
            "source": "dataset",
            "kind": "data",
        },
        {"uri": "s3://b/x", "path": "spec.template.spec.volumes[0]", "source": "dataset", "kind": "data"},
    ]
    assert view["dataProblems"] == []
    # A Dataset kind of another API group is not Fluid's.
    other = {**dataset, "apiVersion": "example.com/v1"}
    assert _view(_job("imagenet"), other)["dataProblems"][0]["message"].startswith(
        "PersistentVolumeClaim imagenet"
    )


# -- hostile input -----------------------------------------------------------------------------------


def test_claim_volumes_read_are_bounded() -> None:
    job = _job(*[f"c{i}" for i in range(MAX_CLAIM_VOLUMES + 500)])
    view = _view(job)
    assert len(view["dataProblems"]) == MAX_CLAIM_VOLUMES + 1
    assert (
        view["dataProblems"][-1]["message"]
        == f"more than {MAX_CLAIM_VOLUMES} claim volumes; the rest are not read"
    )


def test_dataset_mounts_and_mount_options_read_are_bounded() -> None:
    dataset = {
        "apiVersion": "data.fluid.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "d", "namespace": "eu-ml"},
        "spec": {
            "mounts": [{"mountPoint": f"s3://b/{i}"} for i in range(10_000)] + [{"mountPoint": "x" * 10**6}]
        },
    }
    view = _view(_job("d"), dataset)
    assert len(view["dataLocations"]) == MAX_DATASET_MOUNTS
    assert view["dataProblems"] == [
        {
            "path": "spec.template.spec.volumes[0]",
            "message": f"Dataset d has more than {MAX_DATASET_MOUNTS} mounts; the rest are not read",
        }
    ]
    # Options past MAX_OPTIONS are not read (the prefix there is not applied); huge values are not read.
    options = ["allow-delete"] * MAX_OPTIONS + ["prefix late/"]
    assert bucket_uri("s3.csi.aws.com", "h", {"bucketName": "b"}, options) == "s3://b"
    assert bucket_uri("s3.csi.aws.com", "h", {"bucketName": "b"}, ["prefix " + "p" * 10**6]) == "s3://b"
    assert (
        bucket_uri("s3.csi.aws.com", "h", {"bucketName": "b" * 10**6}, [])
        == "<bucket of s3.csi.aws.com not readable>"
    )


def test_odd_claim_and_volume_shapes_never_raise() -> None:
    odd: list[Any] = [
        {"name": "a", "persistentVolumeClaim": {"claimName": 7}},
        {"name": "b", "persistentVolumeClaim": {"claimName": "x" * 10_000}},
        {"name": "c", "persistentVolumeClaim": "nope"},
        "not-a-volume",
    ]
    job = _job()
    job["spec"]["template"]["spec"]["volumes"] = odd
    bad_pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "p"},
        "spec": {"csi": ["x"]},
    }
    view = _view(job, bad_pv, {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": "x"})
    assert [p["path"] for p in view["dataProblems"]] == [
        "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
        "spec.template.spec.volumes[1].persistentVolumeClaim.claimName",
    ]


# -- through check, manifests and --inventory ------------------------------------------------------


def _write(path: Path, *docs: Any) -> str:
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


EU = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "eu-ml", "labels": {"policyengine.io/residency": "eu"}},
}
CONFIG = {
    "apiVersion": "policyengine.io/v1",
    "kind": "GovernanceConfig",
    "metadata": {"name": "c"},
    "spec": {
        "residency": {
            "zones": {"eu": {"regions": ["eu-west-1"]}, "us": {"regions": ["us-east-1"]}},
            "dataLocations": [{"prefix": "s3://acme-us-raw-data/", "region": "us-east-1"}],
            "unknownLocation": "deny",
        }
    },
}


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["check", *args, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    report["code"] = code
    return report


def _denials(report: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in report["results"]:
        if r["outcome"] == "fail" and r["action"] == "deny":
            out.setdefault(r["resource"]["name"], []).append(r["policy"])
    return out


def test_the_reproduction_a_job_reading_a_us_bucket_through_a_claim_is_denied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path / "config.yaml", CONFIG)
    claim = _pvc("us-raw", storageClassName="", volumeName="us-raw-pv")
    manifests = _write(tmp_path / "job.yaml", EU, S3_PV, claim, _job("us-raw"))
    report = _check(capsys, manifests, "--config", config)
    assert report["code"] == 1
    assert _denials(report) == {"train": ["residency-data-locations"]}


def test_the_claim_chain_through_the_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path / "config.yaml", CONFIG)
    claim = _pvc("us-raw", storageClassName="", volumeName="us-raw-pv")
    inventory = _write(tmp_path / "cluster.yaml", EU, S3_PV, claim)
    manifests = _write(tmp_path / "job.yaml", _job("us-raw"), _job("missing", name="ghost"))
    report = _check(capsys, manifests, "--config", config, "--inventory", inventory)
    assert report["code"] == 1
    assert _denials(report) == {"train": ["residency-data-locations"], "ghost": ["residency-claims-located"]}
