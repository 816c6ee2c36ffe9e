"""GPU memory each team holds, from the inventory: what ``gpu-memory-quota`` adds a request's memory to.

Per non-terminated pod, as ``inventory`` counts its devices: its device-plugin MIG slices by profile
name, and the GPU devices allocated to the ResourceClaims it uses (a shared claim once) by the memory the
scheduler recorded (``consumedCapacity``) or the ResourceSlice device each got
(``workloads.memory.held_memory``). Devices of unknown memory are counted apart, never as 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policyengine.inventory import _TERMINATED, _claim_names, _held_by_resource, _pods, team_of
from policyengine.model import Inventory
from policyengine.workloads.claims import CLAIM, ClaimObjects, DeviceClasses
from policyengine.workloads.memory import held_memory
from policyengine.workloads.pods import GpuRules
from policyengine.workloads.slices import DeviceMemory
from policyengine.workloads.values import INT64_MAX, as_dict

__all__ = ["memory_by_pod", "memory_by_team"]


def memory_by_team(
    inventory: Inventory, config: Mapping[str, Any] | None, slices: DeviceMemory, claims: ClaimObjects
) -> dict[str, tuple[int, int]]:
    """Team -> (bytes of GPU memory held where known, devices held whose memory is unknown)."""
    teams: dict[str, tuple[int, int]] = {}
    for namespace, _, known, unknown in memory_by_pod(inventory, config, slices, claims):
        team = team_of(inventory, namespace)
        before = teams.get(team, (0, 0))
        teams[team] = (min(INT64_MAX, before[0] + known), before[1] + unknown)
    return teams


def memory_by_pod(
    inventory: Inventory, config: Mapping[str, Any] | None, slices: DeviceMemory, claims: ClaimObjects
) -> Iterator[tuple[str, Mapping[str, Any], int, int]]:
    """(namespace, pod, bytes known, devices of unknown memory) of each non-terminated pod."""
    rules, classes = GpuRules.from_config(config), DeviceClasses.from_config(config)
    counted: set[tuple[str, str]] = set()  # (namespace, claim): a shared claim's devices count once
    for pod in _pods(inventory):
        if as_dict(pod.get("status")).get("phase") in _TERMINATED:
            continue
        namespace = as_dict(pod.get("metadata")).get("namespace")
        namespace = namespace if isinstance(namespace, str) and namespace else "default"
        own = []
        for name in _claim_names(pod):
            if (namespace, name) not in counted and (claim := claims.get(CLAIM, namespace, name)):
                counted.add((namespace, name))
                own.append(claim)
        known, unknown = held_memory(_held_by_resource(pod, rules), own, classes, slices)
        yield namespace, pod, known, unknown
