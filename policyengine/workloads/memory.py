"""GPU memory a workload takes, beside its device count: ``podTemplates[].gpuMemory``, each DRA device
view's ``memory`` and the workload's ``gpuMemory`` (shape in ``policyengine.workloads``).

Per device, the first of: the request's ``capacity.requests`` memory (KEP-5075 consumable capacity),
rounded up by the matching devices' ``requestPolicy`` when the ResourceSlices give one; the most memory
any device the request may get has in the ResourceSlices (``slices.DeviceMemory``: capacity, or counters
consumed from a shared counter set); a MIG slice's profile name (``nvidia.com/mig-1g.5gb`` is 5 GiB, an
upper bound of what NVIDIA's ``<n>gb`` labels). Anything else (a device-plugin ``nvidia.com/gpu``, a DRA
request no slice describes) is unknown and listed, never counted as 0. Shape (bytes)::

    "gpuMemory": {"total": 85899345920, "maxPerPod": 42949672960, "byResource": {"nvidia.com/gpu": ...},
                  "known": false,    # some device's memory is unknown: listed here, never counted as 0
                  "unknown": [{"template": "<podTemplates[].path>", "resource": "nvidia.com/gpu",
                               "devices": 1, "reason": "..."}],     # devices per pod; at most MAX_UNKNOWN
                  "charge": 85899345920}    # what the request adds: total, or new - old on UPDATE
    podTemplates[].gpuMemory: {"perPod": bytes, "byResource": {resource: bytes}}
    podTemplates[].resourceClaims[].devices[].memory: {"perDevice": bytes, "known": bool,
        "source": "capacity.requests" | "ResourceSlice" | "profile name" | why it is unknown}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policyengine.workloads.claims import CLAIM, TEMPLATE, ClaimObjects, DeviceClasses, claim_spec
from policyengine.workloads.selectors import SelectorBudget, selected_products
from policyengine.workloads.slices import DeviceMemory, memory_bytes
from policyengine.workloads.values import INT64_MAX, as_dict, as_list, clamp, shown, text

__all__ = ["MAX_UNKNOWN", "device_plugin_memory", "held_memory", "memory_charge", "workload_memory"]

GIB = 2**30
MAX_RESULTS = 128  # allocation results read per claim
MAX_UNKNOWN = 64  # unknown entries listed per workload; the rest are counted in the last one
# nvidia.com/mig-<g>g.<n>gb (also 1c.3g.20gb, 1g.10gb+me): the memory the profile is named for.
_MIG_NAME = re.compile(r"nvidia\.com/mig-(?:\d+c\.)?\d+g\.(\d{1,6})gb(?:\+[a-z]+)?")
_MIG_PROFILE = re.compile(r"nvidia\.com/mig-(.+)")
_MEMORY_KEY = "memory"


def device_plugin_memory(resource: str) -> int | None:
    """Bytes of one device-plugin device of ``resource``: a MIG profile's named memory, else None."""
    found = _MIG_NAME.fullmatch(resource)
    return int(found.group(1)) * GIB if found else None


def _mul(a: int, b: int) -> int:
    return min(INT64_MAX, a * b)


class _Claims:
    """Capacity requests of the workload's claim objects, by (source, request name), read once."""

    def __init__(self, claims: ClaimObjects, namespace: str) -> None:
        self.claims, self.namespace = claims, namespace
        self._memo: dict[str, dict[str, Any]] = {}

    def capacity(self, source: str, request: str) -> Any:
        if source not in self._memo:
            kind, _, name = source.partition(" ")
            obj = self.claims.get(kind, self.namespace, name) if kind in (CLAIM, TEMPLATE) else None
            self._memo[source] = _capacity_requests(obj) if obj is not None else {}
        return self._memo[source].get(request)


def _capacity_requests(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Request (or request/alternative) name -> its ``capacity.requests`` memory as written."""
    spec, _ = claim_spec(obj)
    out: dict[str, Any] = {}
    for r in as_list(as_dict(spec.get("devices")).get("requests"))[:32]:
        r = as_dict(r)
        name = text(r.get("name", ""))
        out[name] = _memory_request(as_dict(r.get("exactly") or r))
        for sub in as_list(r.get("firstAvailable"))[:8]:
            out[f"{name}/{text(as_dict(sub).get('name', ''))}"] = _memory_request(as_dict(sub))
    return out


def _memory_request(request: Mapping[str, Any]) -> Any:
    requests = as_dict(as_dict(request.get("capacity")).get("requests"))
    for key in list(requests)[:32]:
        if isinstance(key, str) and key.rpartition("/")[2] == _MEMORY_KEY:
            return requests[key]
    return None


def _dra_device(
    device: Mapping[str, Any], source: str, claims: _Claims, slices: DeviceMemory, budget: SelectorBudget
) -> dict[str, Any]:
    """``{"perDevice": bytes, "known": bool, "source": where it was read}`` for one device request."""
    resource = text(device.get("resource", ""))
    profile_match = _MIG_PROFILE.fullmatch(resource)
    profile = profile_match.group(1) if profile_match else ""
    selectors = as_list(device.get("selectors")) if slices.kinds else []  # nothing to narrow without slices
    selection = selected_products(selectors, budget) if selectors else None
    products = selection.allowed if selection is not None and selection.pinned else ()
    kinds = slices.candidates(text(device.get("deviceClass", "")), profile, products)
    asked = claims.capacity(source, text(device.get("request", "")))
    if asked is not None:
        amount = memory_bytes(asked)
        if amount is None:
            return {
                "perDevice": 0,
                "known": False,
                "source": f"capacity.requests memory {shown(asked)} is not a quantity",
            }
        rounded = [r for k in kinds for p in k.policies if (r := p.rounded(amount)) is not None]
        return {"perDevice": max([amount, *rounded]), "known": True, "source": "capacity.requests"}
    if kinds:
        return {"perDevice": max(k.memory for k in kinds), "known": True, "source": "ResourceSlice"}
    named = device_plugin_memory(resource)
    if named is not None:
        return {"perDevice": named, "known": True, "source": "profile name"}
    return {"perDevice": 0, "known": False, "source": "no ResourceSlice describes these devices"}


class _Tally:
    """What the templates add up to: memory by resource, shared claims apart, and the unknown devices."""

    def __init__(
        self, claims: ClaimObjects, namespace: str, slices: DeviceMemory, budget: SelectorBudget
    ) -> None:
        self.reader, self.slices, self.budget = _Claims(claims, namespace), slices, budget
        self.unknown: list[dict[str, Any]] = []
        self.shared: dict[str, dict[str, int]] = {}  # a shared claim's memory, once per workload

    def template(self, v: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
        """(memory per pod, the part of it that is the pod's own) by resource, for one template view."""
        per_pod: dict[str, int] = {}
        own: dict[str, int] = {}
        dra_devices: dict[str, int] = {}
        for claim in v["resourceClaims"]:
            claim_by: dict[str, int] = {}
            for d in claim["devices"]:
                if d["gpu"] and d["count"]:
                    dra_devices[d["resource"]] = dra_devices.get(d["resource"], 0) + d["count"]
                    self._device(v["path"], claim["source"], d, claim_by)
            _add(per_pod, claim_by)
            if claim["shared"]:
                self.shared[claim["source"]] = claim_by
            else:
                _add(own, claim_by)
        for resource, n in v["gpus"]["byResource"].items():
            plugin = n - dra_devices.get(resource, 0)  # the devices the containers ask for
            each = device_plugin_memory(resource) if plugin > 0 else 0
            if each is None:
                reason = "a device-plugin resource does not say its memory"
                _unknown(self.unknown, v["path"], resource, plugin, reason)
            elif each:
                _add(per_pod, {resource: _mul(each, plugin)})
                _add(own, {resource: _mul(each, plugin)})
        return per_pod, own

    def _device(self, template: str, source: str, d: dict[str, Any], into: dict[str, int]) -> None:
        d["memory"] = m = _dra_device(d, source, self.reader, self.slices, self.budget)
        if m["known"]:
            _add(into, {d["resource"]: _mul(m["perDevice"], d["count"])})
        else:
            reason = f"{source} request {d['request']}: {m['source']}"
            _unknown(self.unknown, template, d["resource"], d["count"], reason)


def workload_memory(
    templates: list[Any],
    views: list[dict[str, Any]],
    claims: ClaimObjects,
    namespace: str,
    slices: DeviceMemory,
    budget: SelectorBudget,
) -> dict[str, Any]:
    """Sets each template's ``gpuMemory`` and each DRA device view's ``memory``; returns the
    workload's ``gpuMemory``. A shared ResourceClaim's memory counts once in ``total``. ``budget`` is
    the workload's selector budget (what the products left of it): selectors past it pin no product,
    which only widens the devices a request may get (their largest memory is charged)."""
    tally = _Tally(claims, namespace, slices, budget)
    max_per_pod, total_by = 0, dict[str, int]()
    for t, v in zip(templates, views, strict=True):
        per_pod, own = tally.template(v)
        pod_total = clamp(sum(per_pod.values()))
        v["gpuMemory"] = {"perPod": pod_total, "byResource": dict(sorted(per_pod.items()))}
        max_per_pod = max(max_per_pod, pod_total)
        _add(total_by, {r: _mul(b, t.replicas) for r, b in own.items()})
    for claim_by in tally.shared.values():
        _add(total_by, claim_by)
    total = clamp(sum(total_by.values()))
    return {
        "total": total,
        "maxPerPod": max_per_pod,
        "byResource": dict(sorted(total_by.items())),
        "known": not tally.unknown,
        "unknown": tally.unknown,
        "charge": total,
    }


def memory_charge(new: Mapping[str, Any], old: Mapping[str, Any]) -> int:
    """The memory an UPDATE adds (``gpuMemory.charge``): max(0, new known total - old known total),
    from the two ``workload.gpuMemory`` figures (the old one read defensively)."""
    before = old.get("total")
    before = before if type(before) is int and before > 0 else 0
    return max(0, int(new["total"]) - before)


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for name, n in more.items():
        into[name] = min(INT64_MAX, into.get(name, 0) + n)


def _unknown(out: list[dict[str, Any]], template: str, resource: str, devices: int, reason: str) -> None:
    if len(out) < MAX_UNKNOWN:
        out.append({"template": template, "resource": resource, "devices": devices, "reason": reason})
    else:
        out[-1]["reason"] = "and more devices whose memory is unknown"


def held_memory(
    held: Mapping[str, int], claims: list[Mapping[str, Any]], classes: DeviceClasses, slices: DeviceMemory
) -> tuple[int, int]:
    """(bytes, devices of unknown memory) a pod holds: its device-plugin devices by resource (``held``,
    GPU devices only) and the GPU devices allocated to its claims, each known by the ResourceSlice
    device it got (or the ``consumedCapacity`` memory the scheduler recorded for it)."""
    known, unknown = 0, 0
    for resource, n in held.items():
        each = device_plugin_memory(resource)
        if each is None:
            unknown += n
        else:
            known = min(INT64_MAX, known + _mul(each, n))
    for claim in claims:
        spec, _ = claim_spec(claim)
        gpu_requests = set()
        for r in as_list(as_dict(spec.get("devices")).get("requests"))[:32]:
            r = as_dict(r)
            name = text(r.get("name", ""))
            if classes.resource(text(as_dict(r.get("exactly") or r).get("deviceClassName", ""))):
                gpu_requests.add(name)
            for sub in as_list(r.get("firstAvailable"))[:8]:
                if classes.resource(text(as_dict(sub).get("deviceClassName", ""))):
                    gpu_requests.add(f"{name}/{text(as_dict(sub).get('name', ''))}")
        allocation = as_dict(as_dict(claim.get("status")).get("allocation"))
        for result in as_list(as_dict(allocation.get("devices")).get("results"))[:MAX_RESULTS]:
            result = as_dict(result)
            if text(result.get("request", "")) not in gpu_requests:
                continue
            consumed = memory_bytes(
                _memory_request({"capacity": {"requests": result.get("consumedCapacity")}})
            )
            memory = (
                consumed
                if consumed is not None
                else slices.allocated(
                    text(result.get("driver", "")),
                    text(result.get("pool", "")),
                    text(result.get("device", "")),
                )
            )
            if memory is None:
                unknown += 1
            else:
                known = min(INT64_MAX, known + memory)
    return known, unknown
