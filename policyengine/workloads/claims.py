"""Where DRA claims are found and what they hold: the claim objects by name, the GPU device classes, and
the GPU devices allocated to a claim.

``ClaimObjects`` indexes the ResourceClaims and ResourceClaimTemplates (``resource.k8s.io``, any version)
a workload's pods may name: the checked manifests, the inventory, or the cluster. ``DeviceClasses`` is
the config's ``spec.gpu.deviceClasses``: which device classes are GPUs and the resource name each counts
under; a request in a MIG class (one mapped to ``mig.nvidia.com``) whose selectors pin one MIG profile
counts under the device plugin's name for that slice, ``nvidia.com/mig-<profile>``. ``allocated_gpus``
reads ``status.allocation.devices.results`` of an allocated claim, under the same names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.persistent import PV, is_volume_object
from policyengine.workloads.runtimes import MAX_RUNTIMES, is_runtime_object, runtime_key
from policyengine.workloads.selectors import MAX_SELECTORS, SelectorBudget, selected_profiles
from policyengine.workloads.values import as_dict, as_list, text

GROUP = "resource.k8s.io"
CLAIM = "ResourceClaim"
TEMPLATE = "ResourceClaimTemplate"
DEVICE_CLASS = "DeviceClass"  # kept for the extended resources it serves (``workloads.extended``)
# Which device classes are GPUs, and the name the view counts each under. A whole NVIDIA or AMD GPU is
# the same device its device plugin serves as nvidia.com/gpu or amd.com/gpu, so both ways of asking add
# up under one name (a GPU passed whole to a VM through VFIO too); a MIG slice is not a whole GPU and
# keeps a name of its own (its profile's, nvidia.com/mig-<profile>, when the request pins one).
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
# The resource of MIG classes, and the device plugin's prefix for one profile's slices (nvidia.com/mig-1g.5gb).
MIG_RESOURCE = "mig.nvidia.com"
MIG_PROFILE_PREFIX = "nvidia.com/mig-"
# What a profile may look like to become part of a resource name (1g.5gb, 1g.10gb+me, 1c.3g.20gb).
_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,62}")
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

    def request_resource(self, device_class: str, selectors: Sequence[str], budget: SelectorBudget) -> str:
        """The resource a request's devices count under: its class's, except that a MIG request whose
        selectors pin exactly one profile counts as that profile's slices, as the device plugin names them,
        so a per-profile quota holds however the slice is asked for."""
        resource = self.resource(device_class)
        if resource != MIG_RESOURCE or not selectors:
            return resource
        profiles = selected_profiles(selectors, budget)
        if profiles.pinned and len(profiles.allowed) == 1 and _PROFILE.fullmatch(profiles.allowed[0]):
            return MIG_PROFILE_PREFIX + profiles.allowed[0]
        return resource


class ClaimObjects:
    """ResourceClaims, ResourceClaimTemplates and PodGroups (whose claims pods share, see
    ``workloads.scheduling``) by (kind, namespace, name); later objects win. The DeviceClasses among the
    objects are kept in order beside them (cluster-scoped, read by name). PersistentVolumeClaims, Fluid
    Datasets and PersistentVolumes (cluster-scoped: namespace "") are indexed too (``workloads.persistent``),
    and Kubeflow Trainer's runtimes, which TrainJobs name (``workloads.runtimes``; later ones win too)."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self._runtimes: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self.device_classes: list[Mapping[str, Any]] = []
        for obj in objects:
            if is_runtime_object(obj):
                key = runtime_key(obj)
                if key in self._runtimes or len(self._runtimes) < MAX_RUNTIMES:
                    self._runtimes[key] = obj
                continue
            if not (is_claim_object(obj) or _is_pod_group(obj) or is_volume_object(obj)):
                continue
            if obj["kind"] == DEVICE_CLASS:
                if len(self.device_classes) < MAX_CLAIM_OBJECTS:
                    self.device_classes.append(obj)
            else:
                meta = as_dict(obj.get("metadata"))
                namespace = "" if obj["kind"] == PV else text(meta.get("namespace") or "default")
                key = (obj["kind"], namespace, text(meta.get("name")))
                if key in self._by_key or len(self._by_key) < MAX_CLAIM_OBJECTS:
                    self._by_key[key] = obj

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._by_key.get((kind, namespace, name))

    def claims(self) -> Iterable[tuple[tuple[str, str, str], Mapping[str, Any]]]:
        return self._by_key.items()

    def runtime(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A Trainer runtime by kind, namespace ("" for a ClusterTrainingRuntime) and name."""
        return self._runtimes.get((kind, namespace, name))


NO_CLAIMS = ClaimObjects()


def is_claim_object(obj: Any) -> bool:
    """A ResourceClaim, ResourceClaimTemplate or DeviceClass of ``resource.k8s.io`` (any version)."""
    if not isinstance(obj, Mapping) or obj.get("kind") not in (CLAIM, TEMPLATE, DEVICE_CLASS):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


def _is_pod_group(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or obj.get("kind") != "PodGroup":
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == "scheduling.k8s.io"


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
    budget = SelectorBudget()
    by_request: dict[str, str] = {}  # request (or request/alternative) -> resource
    for r in as_list(as_dict(spec.get("devices")).get("requests"))[:MAX_REQUESTS]:
        r = as_dict(r)
        name = text(r.get("name", ""))
        by_request[name] = _resource_of(as_dict(r.get("exactly") or r), classes, budget)
        for sub in as_list(r.get("firstAvailable"))[:MAX_ALTERNATIVES]:
            alternative = f"{name}/{text(as_dict(sub).get('name', ''))}"
            by_request[alternative] = _resource_of(as_dict(sub), classes, budget)
    out: dict[str, int] = {}
    results = as_list(
        as_dict(as_dict(as_dict(claim.get("status")).get("allocation")).get("devices")).get("results")
    )
    for result in results:
        resource = by_request.get(text(as_dict(result).get("request", "")), "")
        if resource:
            out[resource] = out.get(resource, 0) + 1
    return out


def selector_expressions(request: Mapping[str, Any]) -> list[str]:
    """The CEL expressions of a request's ``selectors`` (Kubernetes allows 32; the rest are not read)."""
    found = []
    for sel in as_list(request.get("selectors"))[:MAX_SELECTORS]:
        expression = as_dict(as_dict(sel).get("cel")).get("expression")
        if isinstance(expression, str):
            found.append(expression)
    return found


def _resource_of(request: Mapping[str, Any], classes: DeviceClasses, budget: SelectorBudget) -> str:
    device_class = text(request.get("deviceClassName", ""))
    return classes.request_resource(device_class, selector_expressions(request), budget)
