"""Bucket volumes as data locations: the one table of CSI drivers that mount an object-store bucket, and
the location a volume of one of them reads (``s3://bucket/prefix/``, ``gs://bucket/dir/``,
``az://account/container/``). A driver not in the table is not a data location.

Inline CSI volumes (``volumes[].csi``) are read from the manifest. A generic ephemeral volume
(``volumes[].ephemeral.volumeClaimTemplate``) names a StorageClass, not a driver: it is read when that
class (or, without a name, the default class) is in the inventory, its provisioner is a bucket driver and
its parameters name an existing bucket or container; a class of a bucket driver that names none makes
new storage, which holds no dataset, and a class the inventory does not hold is not read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.workloads.kinds import PodTemplate
from policyengine.workloads.values import as_dict, as_list, shown

__all__ = [
    "BUCKET_DRIVERS",
    "MAX_BUCKET_VOLUMES",
    "NO_STORAGE_CLASSES",
    "BucketDriver",
    "StorageClasses",
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


DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# The parameter of a StorageClass of each bucket driver that names an existing bucket (lower case).
_BUCKET_PARAMETER = {"s3.csi.aws.com": "bucketname", "gcsfuse.csi.storage.gke.io": "bucketname",
                     "blob.csi.azure.com": "containername"}  # fmt: skip


class StorageClasses:
    """The inventory's StorageClasses of bucket drivers by name, and the default class (the cluster's
    ``is-default-class`` one; with several, the last listed, as a tie never resolves to a bucket)."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self._classes: dict[str, Mapping[str, Any]] = {}
        self._default: str | None = None
        for obj in objects:
            if not isinstance(obj, Mapping) or obj.get("kind") != "StorageClass":
                continue
            meta = as_dict(obj.get("metadata"))
            name = meta.get("name")
            if not isinstance(name, str):
                continue
            self._classes[name] = obj
            if as_dict(meta.get("annotations")).get(DEFAULT_CLASS_ANNOTATION) == "true":
                self._default = name

    def location(self, template: Mapping[str, Any], path: str) -> dict[str, str] | None:
        """The bucket a generic ephemeral volume's claim template provisions from, or None."""
        name = as_dict(template.get("spec")).get("storageClassName")
        sc = self._classes.get(name if isinstance(name, str) else self._default or "")
        driver = as_dict(sc).get("provisioner")
        if not isinstance(driver, str) or driver not in BUCKET_DRIVERS:
            return None
        parameters = as_dict(as_dict(sc).get("parameters"))
        if not any(isinstance(k, str) and k.lower() == _BUCKET_PARAMETER[driver] for k in parameters):
            return None  # the driver creates the bucket or container: new storage, not a dataset
        options = [o for o in as_list(as_dict(sc).get("mountOptions")) if isinstance(o, str)]
        return bucket_location(driver, parameters, options, path)


NO_STORAGE_CLASSES = StorageClasses()


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


def _volume_location(
    volume: Mapping[str, Any], path: str, classes: StorageClasses
) -> tuple[str, dict[str, str] | None] | None:
    """(driver, location) of a bucket volume, inline CSI or generic ephemeral; None for any other."""
    csi = as_dict(volume.get("csi"))
    driver = csi.get("driver")
    if isinstance(driver, str) and driver in BUCKET_DRIVERS:
        return driver, bucket_location(driver, as_dict(csi.get("volumeAttributes")), (), f"{path}.csi")
    template = as_dict(volume.get("ephemeral")).get("volumeClaimTemplate")
    if isinstance(template, Mapping):
        found = classes.location(template, f"{path}.ephemeral.volumeClaimTemplate")
        return (found["driver"], found) if found else None
    return None


def csi_volume_refs(
    obj: Mapping[str, Any],
    templates: Sequence[PodTemplate],
    data: list[dict[str, str]],
    classes: StorageClasses = NO_STORAGE_CLASSES,
) -> None:
    """Bucket volumes of every pod spec of the workload, at most MAX_BUCKET_VOLUMES; one unknown location
    stands for those past it."""
    specs = [(t.path, t.spec) for t in templates]
    if obj.get("kind") == "TrainJob":
        specs.extend(_trainjob_pod_specs(obj))
    found = 0
    for base, pod_spec in specs:
        for i, volume in enumerate(as_list(pod_spec.get("volumes"))):
            path = f"{base}.volumes[{i}]"
            bucket = _volume_location(as_dict(volume), path, classes)
            if bucket is None:
                continue
            if found == MAX_BUCKET_VOLUMES:
                why = f"more than {MAX_BUCKET_VOLUMES} bucket volumes; the rest are not read"
                data.append({"uri": "csi://?", "path": path, "source": "csiVolume", "kind": "data",
                             "driver": bucket[0], "unknown": why})  # fmt: skip
                return
            found += 1
            if bucket[1] is not None:
                data.append(bucket[1])
