"""Where DRA claims are found and what they hold: the claim objects by name, the GPU device classes, and
the GPU devices allocated to a claim.

``ClaimObjects`` indexes the ResourceClaims and ResourceClaimTemplates (``resource.k8s.io``, any version)
a workload's pods may name: the checked manifests, the inventory, or the cluster. ``DeviceClasses`` is
the config's ``spec.gpu.deviceClasses``: which device classes are GPUs and the resource name each counts
under. ``allocated_gpus`` reads ``status.allocation.devices.results`` of an allocated claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.values import as_dict, as_list, text

GROUP = "resource.k8s.io"
CLAIM = "ResourceClaim"
TEMPLATE = "ResourceClaimTemplate"
# Which device classes are GPUs, and the name the view counts each under. A whole NVIDIA or AMD GPU is
# the same device its device plugin serves as nvidia.com/gpu or amd.com/gpu, so both ways of asking add
# up under one name (a GPU passed whole to a VM through VFIO too); a MIG slice is not a whole GPU and
# keeps a name of its own.
DEFAULT_DEVICE_CLASSES: Mapping[str, str] = {
    "gpu.nvidia.com": "nvidia.com/gpu",
    "vfio.gpu.nvidia.com": "nvidia.com/gpu",
    "mig.nvidia.com": "mig.nvidia.com",
    "gpu.amd.com": "amd.com/gpu",
    "gpu.intel.com": "gpu.intel.com",
    # Other accelerators' DRA drivers: a device is the unit their device plugins count.
    "gaudi.intel.com": "habana.ai/gaudi",
    "tpu.google.com": "google.com/tpu",
    "neuron.aws.com": "aws.amazon.com/neuron",
}
# Claim objects kept in one index: far more than any namespace holds; the rest are not found.
MAX_CLAIM_OBJECTS = 100_000
MAX_NAME = 253  # a DNS subdomain name
# Requests and firstAvailable alternatives read per claim (Kubernetes' own validation limits).
MAX_REQUESTS = 32
MAX_ALTERNATIVES = 8


def cut(value: Any, limit: int = MAX_NAME) -> str:
    """A string for the view, no longer than ``limit`` characters (a longer one is marked as cut)."""
    s = text(value)
    return s if len(s) <= limit else f"{s[:limit]}… ({len(s)} characters)"


@dataclass(frozen=True)
class DeviceClasses:
    """GPU device classes and the resource name each counts under (``spec.gpu.deviceClasses``)."""

    resources: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DEVICE_CLASSES))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DeviceClasses:
        cfg = as_dict(config)
        if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
            cfg = cfg["spec"]
        given = as_dict(cfg.get("gpu")).get("deviceClasses")
        if not isinstance(given, Mapping):
            return cls()
        return cls({k: v for k, v in given.items() if isinstance(k, str) and isinstance(v, str) and v})

    def resource(self, device_class: str) -> str:
        """The resource name of a GPU class; "" for a class that is not a GPU."""
        return self.resources.get(device_class, "")


class ClaimObjects:
    """ResourceClaims and ResourceClaimTemplates by (kind, namespace, name); later objects win."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        for obj in objects:
            if is_claim_object(obj):
                meta = as_dict(obj.get("metadata"))
                key = (obj["kind"], text(meta.get("namespace") or "default"), text(meta.get("name")))
                if key in self._by_key or len(self._by_key) < MAX_CLAIM_OBJECTS:
                    self._by_key[key] = obj

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._by_key.get((kind, namespace, name))

    def claims(self) -> Iterable[tuple[tuple[str, str, str], Mapping[str, Any]]]:
        return self._by_key.items()


NO_CLAIMS = ClaimObjects()


def is_claim_object(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or obj.get("kind") not in (CLAIM, TEMPLATE):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


def claim_spec(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The claim spec of a ResourceClaim (``spec``) or of the claims a template makes (``spec.spec``)."""
    spec = as_dict(obj.get("spec"))
    if obj.get("kind") == TEMPLATE:
        return as_dict(spec.get("spec")), "spec.spec"
    return spec, "spec"


def allocated_gpus(claim: Mapping[str, Any], classes: DeviceClasses) -> dict[str, int]:
    """GPU devices an allocated ResourceClaim holds, by resource: each ``status.allocation.devices.results``
    entry names its request (``<request>`` or ``<request>/<alternative>``), whose class says if it is a GPU."""
    spec, _ = claim_spec(claim)
    by_request: dict[str, str] = {}
    for r in as_list(as_dict(spec.get("devices")).get("requests"))[:MAX_REQUESTS]:
        r = as_dict(r)
        name = text(r.get("name", ""))
        by_request[name] = text(as_dict(r.get("exactly") or r).get("deviceClassName", ""))
        for sub in as_list(r.get("firstAvailable"))[:MAX_ALTERNATIVES]:
            by_request[f"{name}/{text(as_dict(sub).get('name', ''))}"] = text(
                as_dict(sub).get("deviceClassName", "")
            )
    out: dict[str, int] = {}
    results = as_list(
        as_dict(as_dict(as_dict(claim.get("status")).get("allocation")).get("devices")).get("results")
    )
    for result in results:
        resource = classes.resource(by_request.get(text(as_dict(result).get("request", "")), ""))
        if resource:
            out[resource] = out.get(resource, 0) + 1
    return out
