"""What every object in a manifest must be before it is judged, and which objects the gate reads whole
before judging any: small enough to import before the engine, so that the files of a large tree can be
read (``policyengine.readahead``) while the engine and the policy set are still being loaded."""

from __future__ import annotations

from typing import Any

from policyengine import errors
from policyengine.errors import Problem
from policyengine.loader import Document, PathKey

# The kinds of the objects workloads look up by name among the checked manifests (``gate.cluster_objects``:
# DRA claims, templates and device classes, PodGroups and Workloads, PVCs, PVs and Fluid Datasets,
# Trainer runtimes), whatever their group: such a document is never parked.
LOOKED_UP_KINDS = frozenset(
    {
        "ResourceClaim",
        "ResourceClaimTemplate",
        "DeviceClass",
        "PodGroup",
        "Workload",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "Dataset",
        "TrainingRuntime",
        "ClusterTrainingRuntime",
    }
)


def is_object(data: Any) -> bool:
    return isinstance(data, dict) and bool(data.get("apiVersion")) and bool(data.get("kind"))


def can_wait(doc: Document) -> bool:
    """Whether the gate reads no more of ``doc`` than its identity before evaluating it: an object that
    is neither a Namespace nor of a kind workloads look up by name."""
    data = doc.data
    if not is_object(data) or (data.get("kind") == "Namespace" and data.get("apiVersion") == "v1"):
        return False
    return data.get("kind") not in LOOKED_UP_KINDS


def object_meta_problems(doc: Document) -> list[Problem]:
    """What kube-apiserver rejects in any object before admission runs: apiVersion and kind that are not
    strings, and an ObjectMeta of the wrong shape (a label or annotation value that is not a string is
    the classic: ``version: 1.0``). Such a manifest is an input error, not something to judge."""
    data = doc.data
    out: list[Problem] = []

    def bad(path: PathKey, message: str) -> None:
        out.append(doc.problem(errors.SCHEMA_INVALID, message, path))

    for key in ("apiVersion", "kind"):
        if not isinstance(data.get(key), str):
            bad((key,), f"{key} must be a string")
    meta = data.get("metadata")
    if meta is None:
        return out
    if not isinstance(meta, dict):
        bad(("metadata",), "metadata must be a mapping")
        return out
    for key in ("name", "generateName", "namespace"):
        if key in meta and not isinstance(meta[key], str):
            bad(("metadata", key), f"metadata.{key} must be a string")
    for key in ("labels", "annotations"):
        values = meta.get(key)
        if values is None:
            continue
        if not isinstance(values, dict):
            bad(("metadata", key), f"metadata.{key} must be a mapping of strings to strings")
            continue
        for name, value in values.items():
            if not isinstance(value, str) and value is not None:  # null reads as "", as in Go
                bad(("metadata", key, name), f"{key[:-1]} {name!r} must be a string, not {value!r}; quote it")
    return out
