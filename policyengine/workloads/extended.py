"""Extended resources served by DRA (KEP-5004): container resources that ask for devices of a DeviceClass.

A container limit ``deviceclass.resource.kubernetes.io/<class>: N`` asks for N devices of that class (the
implicit name every DeviceClass has), and a DeviceClass with ``spec.extendedResourceName: example.com/gpu``
makes that name a request of the class too. The scheduler serves such a request with a ResourceClaim it
generates (annotated ``resource.kubernetes.io/extended-resource-claim``); the pod's own request is what
counts, so that claim is never a second request. A name the GPU rules already count as a device-plugin
resource (``nvidia.com/gpu``, ``nvidia.com/mig-*``) stays counted once, under its own name; any other name
served by a GPU class of ``spec.gpu.deviceClasses`` counts under that class's resource name.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.claims import DEVICE_CLASS, GROUP, ClaimObjects, DeviceClasses
from policyengine.workloads.pods import GpuRules
from policyengine.workloads.values import Problems, as_dict, clamp, gpu_quantity, path_key, text

IMPLICIT_PREFIX = "deviceclass.resource.kubernetes.io/"
GENERATED_CLAIM_ANNOTATION = "resource.kubernetes.io/extended-resource-claim"
# A resource name is a qualified name: a DNS subdomain prefix (253) and a name part (63). A longer
# extendedResourceName cannot be a pod's resource name (the API server rejects both), so it is not read.
MAX_RESOURCE_NAME = 253 + 1 + 63
# DeviceClass objects read into the index: far more than any cluster holds; the rest are not read.
MAX_DEVICE_CLASSES = 10_000
# DRA extended resources one container's view lists (each names a GPU class; counting is not bounded by it).
MAX_VIEW_ENTRIES = 32


def is_device_class(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or obj.get("kind") != DEVICE_CLASS:
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


@dataclass(frozen=True)
class ExtendedResources:
    """Which device class serves each extended resource name, and how the view counts its devices."""

    classes: DeviceClasses = field(default_factory=DeviceClasses)
    by_name: Mapping[str, str] = field(default_factory=dict)  # extendedResourceName -> device class

    @classmethod
    def build(cls, objects: Iterable[Any], classes: DeviceClasses) -> ExtendedResources:
        """From DeviceClass objects. Two classes naming one resource: as the scheduler picks, the one
        created later, and between classes created at the same time the name sorted first."""
        best: dict[str, tuple[str, str]] = {}  # resource -> (creationTimestamp, class)
        seen = 0
        for obj in objects:
            if not is_device_class(obj):
                continue
            seen += 1
            if seen > MAX_DEVICE_CLASSES:
                break
            meta = as_dict(obj.get("metadata"))
            name = meta.get("name")
            resource = as_dict(obj.get("spec")).get("extendedResourceName")
            if not (isinstance(name, str) and name and isinstance(resource, str) and resource):
                continue
            if len(resource) > MAX_RESOURCE_NAME or len(name) > 253:
                continue
            created = text(meta.get("creationTimestamp") or "")
            held = best.get(resource)
            # RFC 3339 timestamps of one format sort as text; later wins, then the smaller name.
            if held is None or created > held[0] or (created == held[0] and name < held[1]):
                best[resource] = (created, name)
        return cls(classes, {resource: c for resource, (_, c) in best.items()})

    def device_class(self, resource: str) -> str:
        """The device class a container resource asks devices of; "" when none serves it."""
        if resource.startswith(IMPLICIT_PREFIX):
            return resource[len(IMPLICIT_PREFIX) :]
        return self.by_name.get(resource, "")

    def counted_as(self, resource: str, rules: GpuRules) -> tuple[str, str]:
        """(device class, resource name the view counts it under), or ("", "") when the name is not a
        DRA GPU request or the GPU rules already count it as a device-plugin resource."""
        if rules.is_gpu(resource):
            return "", ""
        device_class = self.device_class(resource)
        gpu = self.classes.resource(device_class) if device_class else ""
        return (device_class, gpu) if gpu else ("", "")


NO_EXTENDED = ExtendedResources()
# One index per claim-object index and config: the inventory's index is shared by every request.
_BUILT: weakref.WeakKeyDictionary[ClaimObjects, tuple[DeviceClasses, ExtendedResources]] = (
    weakref.WeakKeyDictionary()
)


def extended_resources(claims: ClaimObjects, classes: DeviceClasses) -> ExtendedResources:
    """The extended resources the DeviceClasses among ``claims`` serve (memoised per index and classes)."""
    held = _BUILT.get(claims)
    if held is not None and held[0] == classes:
        return held[1]
    built = ExtendedResources.build(claims.device_classes, classes)
    _BUILT[claims] = (classes, built)
    return built


def container_extended(
    container: Mapping[str, Any],
    resources_path: str,
    rules: GpuRules,
    extended: ExtendedResources,
    problems: Problems,
) -> list[dict[str, Any]]:
    """The DRA extended resources of one container that ask for GPU devices: per name, its class, the
    resource it counts under and the larger of its request and limit (as ``pods.container_gpus``)."""
    resources = as_dict(container.get("resources"))
    found: dict[str, dict[str, Any]] = {}
    served = extended.by_name
    for part in ("requests", "limits"):
        for name, value in as_dict(resources.get(part)).items():
            if not isinstance(name, str) or len(name) > MAX_RESOURCE_NAME:
                continue
            if name not in served and not name.startswith(IMPLICIT_PREFIX):
                continue  # no device class serves it (``counted_as`` would say so after more look-ups)
            device_class, counted = extended.counted_as(name, rules)
            if not counted:
                continue
            n = gpu_quantity(value, f"{resources_path}.{part}[{path_key(name)}]", problems)
            entry = found.setdefault(
                name, {"resource": name, "deviceClass": device_class, "countsAs": counted, "count": 0}
            )
            entry["count"] = max(entry["count"], n)
    return [found[name] for name in sorted(found)]


def add_extended(gpus: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A container's GPU figures (``pods.container_gpus``) with its DRA extended resources added under
    the names they count as; ``draExtendedResources`` lists them (at most ``MAX_VIEW_ENTRIES``)."""
    if not entries:
        return gpus
    by_resource = dict(gpus["byResource"])
    for e in entries:
        by_resource[e["countsAs"]] = clamp(by_resource.get(e["countsAs"], 0) + e["count"])
    by_resource = {k: v for k, v in sorted(by_resource.items())}
    return {
        **gpus,
        "byResource": by_resource,
        "count": clamp(sum(by_resource.values())),
        "draExtendedResources": entries[:MAX_VIEW_ENTRIES],
    }


def is_generated_claim(claim: Mapping[str, Any]) -> bool:
    """A ResourceClaim the scheduler made for a pod's DRA extended resources."""
    annotations = as_dict(as_dict(claim.get("metadata")).get("annotations"))
    return text(annotations.get(GENERATED_CLAIM_ANNOTATION, "")).lower() == "true"
