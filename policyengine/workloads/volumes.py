"""Bucket volumes as data locations: the one table of CSI drivers that mount an object-store bucket, and
the location a volume of one of them reads (``s3://bucket/prefix/``, ``gs://bucket/dir/``,
``az://account/container/``). A driver not in the table is not a data location."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.workloads.kinds import PodTemplate
from policyengine.workloads.values import as_dict, as_list, shown

__all__ = [
    "BUCKET_DRIVERS",
    "MAX_BUCKET_VOLUMES",
    "BucketDriver",
    "bucket_location",
    "csi_volume_refs",
]

# Bucket volumes one workload reports; past that, one unknown location stands for the rest (a policy
# denies or warns on it per unknownLocation), so the view does not grow with the manifest.
MAX_BUCKET_VOLUMES = 256
MAX_MOUNT_OPTIONS = 64  # mount options read per volume; the rest cannot narrow the location
MAX_OPTION_CHARS = 4096  # a longer mount option string is not read (the bucket still is)
# A bucket, account or container name as the providers spell them (S3, GCS and Azure all fit): a
# templated ("{{ .Values.bucket }}", "$(BUCKET)"), empty or oversized name is not one.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# A prefix or directory inside the bucket: no whitespace, templating or wildcard characters.
_SUBPATH = re.compile(r"[^\s{}$?*\\]{1,1024}")
# One mount option: its key, then a space, "=" or ":" and its value (Mountpoint "prefix a/", gcsfuse
# "only-dir=a" or "only-dir:a").
_OPTION = re.compile(r"([A-Za-z0-9_-]{1,64})(?:[=:]|\s+)?(.*)", re.S)

Found = tuple[str | None, str, str]  # (bucket as scheme://name, or None when unreadable; subpath; why)


@dataclass(frozen=True)
class BucketDriver:
    """A CSI driver that mounts a bucket: the URI scheme its locations use and how a volume's
    attributes and mount options name the bucket."""

    driver: str
    scheme: str
    reads: str  # the attributes read, for the docs and the messages
    read: Callable[[Mapping[str, Any], Sequence[str]], Found]


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and _NAME.fullmatch(value) else None


def _subpath(value: str) -> str:
    path = value.strip().strip("/")
    return path if _SUBPATH.fullmatch(path) and ".." not in path.split("/") else ""


def _options(mount_options: Sequence[str], split_commas: bool) -> list[tuple[str, str]]:
    """(key, value) of each mount option: ``key value``, ``key=value``, ``key:value``, ``--key value``."""
    pairs: list[tuple[str, str]] = []
    for raw in mount_options[:MAX_MOUNT_OPTIONS]:
        if not isinstance(raw, str) or len(raw) > MAX_OPTION_CHARS:
            continue
        for item in raw.split(",") if split_commas else [raw]:
            match = _OPTION.fullmatch(item.strip().lstrip("-"))
            if match:
                pairs.append((match[1].replace("_", "-"), match[2]))
    return pairs


def _last(pairs: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in pairs if k == key]
    return _subpath(values[-1]) if values else ""


def _s3(attributes: Mapping[str, Any], mount_options: Sequence[str]) -> Found:
    # Mountpoint for Amazon S3: volumeAttributes.bucketName; the prefix is Mountpoint's --prefix, given
    # in a PersistentVolume's spec.mountOptions ("prefix some/dir/").
    bucket = _name(attributes.get("bucketName"))
    why = "" if bucket else f"bucketName {shown(attributes.get('bucketName'))} is not a bucket name"
    return (bucket and f"s3://{bucket}", _last(_options(mount_options, False), "prefix"), why)


def _gcs(attributes: Mapping[str, Any], mount_options: Sequence[str]) -> Found:
    # Cloud Storage FUSE on GKE: volumeAttributes.bucketName ("_" mounts every bucket the identity can
    # read); only-dir in volumeAttributes.mountOptions (comma-separated) or a PV's spec.mountOptions.
    raw = attributes.get("bucketName")
    bucket = _name(raw) if raw != "_" else None
    why = "" if bucket else f"bucketName {shown(raw)} does not name one bucket"
    inline = attributes.get("mountOptions")
    options = [*mount_options, *([inline] if isinstance(inline, str) else [])]
    return (bucket and f"gs://{bucket}", _last(_options(options, True), "only-dir"), why)


def _azure(attributes: Mapping[str, Any], mount_options: Sequence[str]) -> Found:
    # Azure Blob CSI: storageAccount + containerName (parameter names are case-insensitive). An inline
    # volume usually names only secretName: the account is in the Secret, not in the manifest.
    folded = {k.lower(): v for k, v in attributes.items() if isinstance(k, str)}
    account, container = _name(folded.get("storageaccount")), _name(folded.get("containername"))
    if account and container:
        return (f"az://{account}/{container}", "", "")
    missing = "storageAccount" if not account else "containerName"
    held = " (held in a Secret)" if not account and "secretname" in folded else ""
    return (None, "", f"{missing} {shown(folded.get(missing.lower()))} is not readable{held}")


BUCKET_DRIVERS: Mapping[str, BucketDriver] = {
    d.driver: d
    for d in (
        BucketDriver("s3.csi.aws.com", "s3", "bucketName; prefix mount option", _s3),
        BucketDriver("gcsfuse.csi.storage.gke.io", "gs", "bucketName; only-dir mount option", _gcs),
        BucketDriver("blob.csi.azure.com", "az", "storageAccount, containerName", _azure),
    )
}


def bucket_location(
    driver: str, attributes: Mapping[str, Any], mount_options: Sequence[str], path: str
) -> dict[str, str] | None:
    """The data location of a volume of ``driver`` (None when the driver mounts no bucket): its URI, or
    ``<scheme>://?`` with ``unknown`` saying why when the bucket cannot be read from the manifest."""
    entry = BUCKET_DRIVERS.get(driver)
    if entry is None:
        return None
    bucket, subpath, why = entry.read(attributes, mount_options)
    location = {"path": path, "source": "csiVolume", "kind": "data", "driver": driver}
    if bucket is None:
        return {"uri": f"{entry.scheme}://?", **location, "unknown": f"{driver}: {why}"}
    return {"uri": f"{bucket}/{subpath}/" if subpath else f"{bucket}/", **location}


def _trainjob_pod_specs(obj: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A TrainJob's pod specs that may carry volumes: every ``podSpecOverrides`` entry and every pod of
    its ``runtimePatches`` (the initializers' pods read datasets too, not only the trainer's)."""
    spec = as_dict(obj.get("spec"))
    specs = [
        (f"spec.podSpecOverrides[{i}]", as_dict(o))
        for i, o in enumerate(as_list(spec.get("podSpecOverrides")))
    ]
    for i, patch in enumerate(as_list(spec.get("runtimePatches"))):
        base = f"spec.runtimePatches[{i}].trainingRuntimeSpec.template.spec.replicatedJobs"
        rt = as_dict(as_dict(patch).get("trainingRuntimeSpec"))
        for j, rj in enumerate(
            as_list(as_dict(as_dict(rt.get("template")).get("spec")).get("replicatedJobs"))
        ):
            job = as_dict(as_dict(as_dict(rj).get("template")).get("spec"))
            specs.append(
                (
                    f"{base}[{j}].template.spec.template.spec",
                    as_dict(as_dict(job.get("template")).get("spec")),
                )
            )
    return specs


def csi_volume_refs(
    obj: Mapping[str, Any], templates: Sequence[PodTemplate], data: list[dict[str, str]]
) -> None:
    """Inline CSI volumes (``volumes[].csi``) of bucket drivers in every pod spec of the workload, at
    most MAX_BUCKET_VOLUMES; one unknown location stands for those past it."""
    specs = [(t.path, t.spec) for t in templates]
    if obj.get("kind") == "TrainJob":
        specs.extend(_trainjob_pod_specs(obj))
    found = 0
    for base, pod_spec in specs:
        for i, volume in enumerate(as_list(pod_spec.get("volumes"))):
            csi = as_dict(as_dict(volume).get("csi"))
            driver = csi.get("driver")
            if not isinstance(driver, str) or driver not in BUCKET_DRIVERS:
                continue
            path = f"{base}.volumes[{i}].csi"
            if found == MAX_BUCKET_VOLUMES:
                why = f"more than {MAX_BUCKET_VOLUMES} bucket volumes; the rest are not read"
                data.append({"uri": "csi://?", "path": path, "source": "csiVolume", "kind": "data",
                             "driver": driver, "unknown": why})  # fmt: skip
                return
            found += 1
            location = bucket_location(driver, as_dict(csi.get("volumeAttributes")), (), path)
            if location is not None:
                data.append(location)
