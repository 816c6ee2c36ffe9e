"""GPU memory of the devices DRA drivers publish in ResourceSlices (``resource.k8s.io``, any version).

A device's memory is its ``capacity`` entry ``memory`` (``addressableMemory`` for a VFIO GPU, as the
NVIDIA driver names them), else what it takes from a shared counter set (KEP-4815 partitionable devices:
``consumesCounters[].counters.memory``, or ``framebuffer`` for an NVIDIA vGPU partition). The index
answers two questions: the memory of an allocated device, by (driver, pool, device) as a claim's
``status.allocation.devices.results`` names it; and the most memory any device a request may get has,
by the driver and device type its class selects, narrowed by the MIG profile and product it pins. A
memory capacity with a ``requestPolicy`` (KEP-5075 consumable capacity) is kept with it, since the
scheduler rounds a ``capacity.requests`` amount up to what the policy allows.

Everything read is bounded: devices indexed, distinct (driver, type, profile, product) keys, counter
entries and capacity keys per device, the length of a quantity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from policyengine.quantity import QuantityError, parse_quantity
from policyengine.workloads.claims import GROUP
from policyengine.workloads.selectors import product_label
from policyengine.workloads.values import INT64_MAX, as_dict, as_list, text

__all__ = ["NO_SLICES", "DeviceMemory", "RequestPolicy", "memory_bytes"]

SLICE = "ResourceSlice"
MEMORY_CAPACITIES = ("memory", "addressableMemory")
MEMORY_COUNTERS = ("memory", "framebuffer")
# Far more than any cluster publishes; past these the rest is not indexed (its memory is unknown).
MAX_DEVICES = 100_000
MAX_KEYS = 4096
MAX_POLICIES = 8  # distinct request policies kept per key
MAX_DEVICES_PER_SLICE = 128  # Kubernetes' own limit
MAX_CONSUMPTIONS = 8  # consumesCounters entries read per device (Kubernetes allows fewer)
MAX_CAPACITY_KEYS = 64
MAX_QUANTITY = 64  # characters of a quantity string
MAX_VALID_VALUES = 16
# Device classes of the NVIDIA DRA driver: its driver name and the ``type`` attribute each selects.
NVIDIA_DRIVER = "gpu.nvidia.com"
CLASS_DEVICES: Mapping[str, tuple[str, str]] = {
    "gpu.nvidia.com": (NVIDIA_DRIVER, "gpu"),
    "mig.nvidia.com": (NVIDIA_DRIVER, "mig"),
    "vfio.gpu.nvidia.com": (NVIDIA_DRIVER, "vfio"),
}


def memory_bytes(value: Any) -> int | None:
    """A memory quantity in whole bytes (rounded up, at most int64); None when it is not a quantity."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    if isinstance(value, int):  # bytes as a YAML number: never turned into text (a huge one cannot be)
        return None if value < 0 else min(value, INT64_MAX)
    return None if len(value) > MAX_QUANTITY else _parsed(value)


@functools.lru_cache(maxsize=1024)  # a cluster's slices repeat a few quantities many times
def _parsed(s: str) -> int | None:
    try:
        q = parse_quantity(s)
    except QuantityError:
        return None
    return None if q < 0 else min(math.ceil(q), INT64_MAX)


@dataclass(frozen=True)
class RequestPolicy:
    """A consumable capacity's ``requestPolicy``: the amounts a request is rounded up to."""

    valid_values: tuple[int, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    step: int | None = None

    @classmethod
    def read(cls, policy: Mapping[str, Any]) -> RequestPolicy | None:
        if not policy:
            return None
        values = [memory_bytes(v) for v in as_list(policy.get("validValues"))[:MAX_VALID_VALUES]]
        valid_range = as_dict(policy.get("validRange"))
        return cls(
            tuple(sorted(v for v in values if v is not None)),
            memory_bytes(valid_range.get("min")),
            memory_bytes(valid_range.get("max")),
            memory_bytes(valid_range.get("step")),
        )

    def rounded(self, amount: int) -> int | None:
        """What the scheduler charges for ``amount``; None when the policy allows no such amount."""
        if self.valid_values:
            return next((v for v in self.valid_values if v >= amount), None)
        low = self.minimum or 0
        if amount < low:
            amount = low
        elif self.step:
            amount = low + math.ceil(Fraction(amount - low, self.step)) * self.step
        return None if self.maximum is not None and amount > self.maximum else amount


@dataclass
class _Kind:
    """Devices of one (driver, type, profile, product): the most memory one has, and its policies."""

    memory: int = 0
    policies: set[RequestPolicy] = field(default_factory=set)


class DeviceMemory:
    """The memory of the devices of the ResourceSlices among ``objects``."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self.by_device: dict[tuple[str, str, str], int] = {}
        self.kinds: dict[tuple[str, str, str, str], _Kind] = {}
        self.cut = False  # some device was not indexed
        for obj in objects:
            if isinstance(obj, Mapping) and obj.get("kind") == SLICE and _in_group(obj):
                self._slice(as_dict(obj.get("spec")))

    def __len__(self) -> int:
        return len(self.by_device)

    def _slice(self, spec: Mapping[str, Any]) -> None:
        driver, pool = text(spec.get("driver", "")), text(as_dict(spec.get("pool")).get("name", ""))
        for device in as_list(spec.get("devices"))[:MAX_DEVICES_PER_SLICE]:
            device = as_dict(device)
            basic = as_dict(device.get("basic")) or device  # v1beta1 nests the fields under basic
            memory, policy = _device_memory(basic)
            if memory is None:
                continue
            if len(self.by_device) >= MAX_DEVICES:
                self.cut = True
                return
            self.by_device[(driver, pool, text(device.get("name", "")))] = memory
            attributes = as_dict(basic.get("attributes"))
            key = (
                driver,
                _attribute(attributes, driver, "type"),
                _attribute(attributes, driver, "profile"),
                product_label(_attribute(attributes, driver, "productName")),
            )
            kind = self.kinds.get(key)
            if kind is None:
                if len(self.kinds) >= MAX_KEYS:
                    self.cut = True
                    continue
                kind = self.kinds[key] = _Kind()
            kind.memory = max(kind.memory, memory)
            if policy is not None and len(kind.policies) < MAX_POLICIES:
                kind.policies.add(policy)

    def allocated(self, driver: str, pool: str, device: str) -> int | None:
        return self.by_device.get((driver, pool, device))

    def candidates(self, device_class: str, profile: str, products: tuple[str, ...]) -> list[_Kind]:
        """The kinds of device a request in ``device_class`` may get (a class outside the NVIDIA driver's
        selects its own driver's devices, of any type), narrowed by a pinned profile and products."""
        driver, kind = CLASS_DEVICES.get(device_class, (device_class, ""))
        return [
            k
            for (d, t, p, name), k in self.kinds.items()
            if d == driver
            and (not kind or t == kind)
            and (not profile or p == profile)
            and (not products or name in products)
        ]


NO_SLICES = DeviceMemory()


def _in_group(obj: Mapping[str, Any]) -> bool:
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


def _attribute(attributes: Mapping[str, Any], driver: str, name: str) -> str:
    """A string attribute, written bare or qualified by the driver's domain."""
    value = as_dict(attributes.get(name) or attributes.get(f"{driver}/{name}")).get("string")
    return value if isinstance(value, str) and len(value) <= 253 else ""


def _device_memory(device: Mapping[str, Any]) -> tuple[int | None, RequestPolicy | None]:
    capacity = as_dict(device.get("capacity"))
    for key in list(capacity)[:MAX_CAPACITY_KEYS]:
        if isinstance(key, str) and key.rpartition("/")[2] in MEMORY_CAPACITIES:
            entry = as_dict(capacity[key])
            value = memory_bytes(entry.get("value"))
            if value is not None:
                return value, RequestPolicy.read(as_dict(entry.get("requestPolicy")))
    total: int | None = None
    for consumption in as_list(device.get("consumesCounters"))[:MAX_CONSUMPTIONS]:
        counters = as_dict(as_dict(consumption).get("counters"))
        for name in MEMORY_COUNTERS:
            value = memory_bytes(as_dict(counters.get(name)).get("value"))
            if value is not None:
                total = min(INT64_MAX, (total or 0) + value)
                break
    return total, None
