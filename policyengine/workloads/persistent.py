"""Data behind a pod's ``persistentVolumeClaim`` volumes: the claim, the PersistentVolume it is bound to and
the bucket that volume's CSI driver mounts (source ``claim``), and Fluid Datasets, whose mounts are the
data of the claim Fluid makes for each (same name and namespace; source ``dataset``).

The objects are looked up among the claim objects the caller knows (``claims.ClaimObjects``: the checked
manifests, the inventory, or the cluster). A claim that can be found nowhere, or one bound to a volume
that cannot be found, is a ``dataProblems`` entry: its data cannot be located, so it is not silently left
out. A claim provisioned from a StorageClass with no volume bound yet is a new, empty disk: not data.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from policyengine.workloads.kinds import PodTemplate
from policyengine.workloads.values import Problems, as_dict, as_list, text

if TYPE_CHECKING:
    from policyengine.workloads.claims import ClaimObjects

PVC = "PersistentVolumeClaim"
PV = "PersistentVolume"
DATASET = "Dataset"
FLUID_GROUP = "data.fluid.io"
# Claim volumes read per workload, and mounts per Dataset: far more than any pod or dataset uses; past
# them the rest is a data problem (never silently skipped).
MAX_CLAIM_VOLUMES = 256
MAX_DATASET_MOUNTS = 64
MAX_URI = 2048  # a location longer than this is not a location anyone registers: reported as unreadable
MAX_OPTIONS = 64  # mount options read per volume
MAX_NAME = 253
# Bucket, account and container names as the clouds allow them (lower case, digits, dots, dashes,
# underscores for GCS); a templated or otherwise odd name is not read as a bucket.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{0,221}")
_OPTION = re.compile(r"([A-Za-z0-9_.-]{1,64})(?:[=:\s]\s*(.*))?", re.S)
_PATH = re.compile(r"[A-Za-z0-9._~!*'()@:+,;=/-]{1,1024}")


def is_volume_object(obj: Any) -> bool:
    """A core PersistentVolumeClaim or PersistentVolume, or a Fluid Dataset (``data.fluid.io``, any version)."""
    if not isinstance(obj, Mapping):
        return False
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind in (PVC, PV):
        return api_version == "v1"
    return kind == DATASET and isinstance(api_version, str) and api_version.partition("/")[0] == FLUID_GROUP


def unreadable(what: str) -> str:
    """The location of data whose place cannot be read: no registered prefix matches it, so its region
    is unknown (never a skipped volume)."""
    return f"<{what[:MAX_NAME]} not readable>"


def bucket_uri(
    driver: str, handle: str, attributes: Mapping[str, Any], mount_options: Sequence[Any]
) -> str | None:
    """The URI a PersistentVolume's CSI source mounts: ``s3://bucket/prefix``, ``gs://bucket/dir`` or
    ``az://account/container``; None for a driver that mounts no bucket (a disk, a file share);
    an ``unreadable`` location when the bucket is not written in the object (a Secret-held account)."""
    options = _options(mount_options)
    if driver == "s3.csi.aws.com":  # Mountpoint for Amazon S3: bucket attribute, --prefix mount option
        return _uri("s3", driver, attributes.get("bucketName"), options.get("prefix"))
    if driver == "gcsfuse.csi.storage.gke.io":  # a PV's handle is the bucket ("_": every bucket it may see)
        bucket = handle or attributes.get("bucketName")
        return _uri("gs", driver, "" if bucket == "_" else bucket, options.get("only-dir"))
    if driver == "blob.csi.azure.com":  # Azure Blob: attribute names are case-insensitive
        lower = {k.lower(): v for k, v in attributes.items() if isinstance(k, str)}
        account, container = lower.get("storageaccount"), lower.get("containername")
        parts = handle.split("#")  # the driver's own handles: <resource group>#<account>#<container>[#...]
        if not account and len(parts) >= 3:
            account, container = parts[1], container or parts[2]
        if not (isinstance(account, str) and _BUCKET.fullmatch(account)):
            return unreadable(f"bucket of {driver}")
        return _uri("az", driver, account, container if isinstance(container, str) else "", require_path=True)
    return None


def _options(mount_options: Sequence[Any]) -> dict[str, str]:
    """Mount options as name -> value: ``prefix models/``, ``--prefix=models/``, ``only-dir=d``, ``only-dir:d``."""
    out: dict[str, str] = {}
    for option in list(mount_options)[:MAX_OPTIONS]:
        if not isinstance(option, str) or len(option) > MAX_URI:
            continue
        m = _OPTION.fullmatch(option.strip().lstrip("-"))
        if m:
            out.setdefault(m[1], (m[2] or "").strip())
    return out


def _uri(scheme: str, driver: str, bucket: Any, path: Any, *, require_path: bool = False) -> str:
    if not (isinstance(bucket, str) and _BUCKET.fullmatch(bucket)):
        return unreadable(f"bucket of {driver}")
    sub = path.strip("/") if isinstance(path, str) else ""
    if sub and not _PATH.fullmatch(sub):
        sub = ""  # an odd prefix is read as the whole bucket: the bucket's own region decides
    if require_path and not sub:
        return unreadable(f"bucket of {driver}")  # an Azure account without its container names no data
    return f"{scheme}://{bucket}/{sub}" if sub else f"{scheme}://{bucket}"


class _Bound:
    """PersistentVolumes by the claim their ``spec.claimRef`` names (pre-bound or bound)."""

    def __init__(self, objects: ClaimObjects) -> None:
        self.by_claim: dict[tuple[str, str], Mapping[str, Any]] = {}
        for (kind, _, _), pv in objects.claims():
            if kind == PV:
                ref = as_dict(as_dict(pv.get("spec")).get("claimRef"))
                key = (text(ref.get("namespace") or ""), text(ref.get("name") or ""))
                if key[1]:
                    self.by_claim.setdefault(key, pv)


# One claimRef index per claim-object index: the inventory's is shared by every request.
_BOUND: weakref.WeakKeyDictionary[ClaimObjects, _Bound] = weakref.WeakKeyDictionary()


def _bound(objects: ClaimObjects) -> _Bound:
    held = _BOUND.get(objects)
    if held is None:
        held = _BOUND[objects] = _Bound(objects)
    return held


def claim_locations(
    templates: Iterable[PodTemplate],
    objects: ClaimObjects,
    namespace: str,
    data: list[dict[str, str]],
    problems: Problems,
) -> None:
    """Append the data locations behind each template's claim volumes to ``data``; what cannot be
    located to ``problems`` (``dataProblems`` of the view)."""
    read = 0
    for t in templates:
        for i, volume in enumerate(as_list(t.spec.get("volumes"))):
            claim = as_dict(as_dict(volume).get("persistentVolumeClaim"))
            if not claim:
                continue
            path = f"{t.path}.volumes[{i}]"
            if read >= MAX_CLAIM_VOLUMES:
                problems.append(
                    {
                        "path": path,
                        "message": f"more than {MAX_CLAIM_VOLUMES} claim volumes; the rest are not read",
                    }
                )
                return
            read += 1
            name = claim.get("claimName")
            if not (isinstance(name, str) and 0 < len(name) <= MAX_NAME):
                problems.append(
                    {"path": f"{path}.persistentVolumeClaim.claimName", "message": "no claim name"}
                )
                continue
            _claim(name, path, objects, namespace, data, problems)


def _claim(
    name: str,
    path: str,
    objects: ClaimObjects,
    namespace: str,
    data: list[dict[str, str]],
    problems: Problems,
) -> None:
    dataset = objects.get(DATASET, namespace, name)
    if dataset is not None:
        _dataset(dataset, name, path, data, problems)
    pvc = objects.get(PVC, namespace, name)
    if pvc is None:
        if dataset is None:
            problems.append(
                {"path": path, "message": f"PersistentVolumeClaim {name} not found in namespace {namespace}"}
            )
        return
    spec = as_dict(pvc.get("spec"))
    volume_name = spec.get("volumeName")
    if isinstance(volume_name, str) and volume_name:
        pv = objects.get(PV, "", volume_name)
        if pv is None:
            problems.append(
                {
                    "path": path,
                    "message": f"PersistentVolume {volume_name[:MAX_NAME]} of claim {name} not found",
                }
            )
            return
    else:
        pv = _bound(objects).by_claim.get((namespace, name))
        if pv is None:
            if spec.get("storageClassName") == "":
                # No class: it waits for a pre-made volume, which may hold any data.
                problems.append(
                    {
                        "path": path,
                        "message": f"PersistentVolumeClaim {name} has no storage class and no volume",
                    }
                )
            return  # provisioned from a StorageClass: a new disk, not a dataset
    csi = as_dict(as_dict(pv.get("spec")).get("csi"))
    uri = bucket_uri(
        text(csi.get("driver") or ""),
        text(csi.get("volumeHandle") or ""),
        as_dict(csi.get("volumeAttributes")),
        [o for o in as_list(as_dict(pv.get("spec")).get("mountOptions"))],
    )
    if uri is not None:
        data.append({"uri": uri, "path": path, "source": "claim", "kind": "data"})


def _dataset(
    dataset: Mapping[str, Any], name: str, path: str, data: list[dict[str, str]], problems: Problems
) -> None:
    mounts = as_list(as_dict(dataset.get("spec")).get("mounts"))
    if len(mounts) > MAX_DATASET_MOUNTS:
        problems.append(
            {
                "path": path,
                "message": f"Dataset {name} has more than {MAX_DATASET_MOUNTS} mounts; the rest are not read",
            }
        )
    for mount in mounts[:MAX_DATASET_MOUNTS]:
        point = as_dict(mount).get("mountPoint")
        if isinstance(point, str) and 0 < len(point) <= MAX_URI:
            data.append({"uri": point, "path": path, "source": "dataset", "kind": "data"})
        else:
            data.append(
                {
                    "uri": unreadable(f"mountPoint of Dataset {name}"),
                    "path": path,
                    "source": "dataset",
                    "kind": "data",
                }
            )
