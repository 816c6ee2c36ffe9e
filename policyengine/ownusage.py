"""What an existing object's own pods hold, so a scan judges it against the rest of its quota pool.

A scan judges a workload that already runs as a CREATE. Its pods are in the pool's usage already, so its
usage plus its charge would count it twice (a Job holding 24 of 32 GPUs would be "24 in use + 24 > 32").
``OwnUsage`` indexes, once per inventory, the devices each pod holds -- per pool, per resource, per
product and GPU memory, counted as the pool figures count them -- by every identity the pod names
(``charging.pod_identities``: ownerReferences, Job labels, a Deployment's ReplicaSet, JobSet, LWS and
RayCluster labels); ``without`` takes the object's own pods out of the figures ``org.quota`` reads, the
object's charge staying whole. A team whose running workloads fit its quota passes; below their total,
each of them fails. Admission never uses it: a new object has no pods yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from policyengine.charging import pod_identities
from policyengine.inventory import held_by_pod, team_of
from policyengine.memory_usage import memory_by_pod
from policyengine.model import Inventory
from policyengine.org import ProductInUse, pool_of
from policyengine.productusage import ProductUsage, pod_products
from policyengine.workloads import ClaimObjects, DeviceMemory
from policyengine.workloads.values import clamp

__all__ = ["Own", "OwnUsage", "PoolFigures", "without", "without_in_queue"]


@dataclass
class Own:
    """Devices some pods of one pool hold."""

    devices: int = 0
    by_resource: dict[str, int] = field(default_factory=dict)
    products: ProductUsage = field(default_factory=ProductUsage)
    memory: list[int] = field(default_factory=lambda: [0, 0])  # [bytes known, devices of unknown memory]


@dataclass(frozen=True)
class PoolFigures:
    """The pool usage ``org.quota`` is computed from (``views``): GPUs, per resource, per product, memory."""

    pools: Mapping[str, int]
    by_resource: Mapping[str, Mapping[str, int]]
    products: ProductInUse
    memory: Mapping[str, list[int]]


@dataclass
class OwnUsage:
    """Each device-holding pod's pool and devices, and the pods each identity names (by position)."""

    pods: list[tuple[str, Own]] = field(default_factory=list)
    by_identity: dict[str, list[int]] = field(default_factory=dict)
    visited: int = 0  # pods read by ``held`` (the bound the hostile tests assert)
    _positions: dict[int, int] = field(default_factory=dict)  # id(pod) -> position, while building

    @property
    def indexed(self) -> int:
        return len(self.pods)

    @classmethod
    def build(
        cls,
        inventory: Inventory,
        config: Mapping[str, Any] | None,
        teams: Mapping[str, Any],
        *,
        products: bool,
        memory: bool,
        slices: DeviceMemory | None = None,
        claims: ClaimObjects | None = None,
    ) -> OwnUsage:
        """One pass per figure over the inventory's pods; ``products``/``memory``: whether some team
        budgets products or GPU memory (the figures are not read otherwise, so not indexed)."""
        index = cls()
        for namespace, pod, held in held_by_pod(inventory, config):
            if (devices := sum(held.values())) > 0:
                own = index._entry(inventory, teams, namespace, pod)
                own.devices += devices
                for name, n in held.items():
                    own.by_resource[name] = own.by_resource.get(name, 0) + n
        if products:
            for namespace, pod, named, excluded, gpus in pod_products(inventory, config):
                index._entry(inventory, teams, namespace, pod).products.add(named, excluded, gpus)
        if memory:
            claims = claims if claims is not None else ClaimObjects(inventory.objects)
            slices = slices if slices is not None else DeviceMemory(inventory.objects)
            for namespace, pod, known, unknown in memory_by_pod(inventory, config, slices, claims):
                if known or unknown:
                    own = index._entry(inventory, teams, namespace, pod)
                    own.memory[0] = min(2**63 - 1, own.memory[0] + known)
                    own.memory[1] += unknown
        index._positions.clear()
        return index

    def _entry(self, inventory: Inventory, teams: Mapping[str, Any], namespace: str, pod: Any) -> Own:
        at = self._positions.get(id(pod))
        if at is None:
            at = self._positions[id(pod)] = len(self.pods)
            self.pods.append((pool_of(team_of(inventory, namespace), teams), Own()))
            for identity in pod_identities(pod):
                self.by_identity.setdefault(identity, []).append(at)
        return self.pods[at][1]

    def held(self, identities: Iterable[str]) -> dict[str, Own]:
        """What the pods naming any of ``identities`` hold, per pool (each pod once)."""
        positions = {at for identity in identities for at in self.by_identity.get(identity, ())}
        out: dict[str, Own] = {}
        for at in positions:
            self.visited += 1
            pool, pod = self.pods[at]
            own = out.setdefault(pool, Own())
            own.devices += pod.devices
            for name, n in pod.by_resource.items():
                own.by_resource[name] = own.by_resource.get(name, 0) + n
            own.products.merge(pod.products)
            own.memory = [min(2**63 - 1, own.memory[0] + pod.memory[0]), own.memory[1] + pod.memory[1]]
        return out


def without(own: Mapping[str, Own], figures: PoolFigures) -> PoolFigures:
    """``figures`` less ``own`` (``OwnUsage.held``), pool by pool, never below 0."""
    if not own:
        return figures
    return PoolFigures(
        pools=_Overlay(
            {p: max(0, figures.pools.get(p, 0) - o.devices) for p, o in own.items()}, figures.pools
        ),
        by_resource=_Overlay(
            {p: _less(figures.by_resource.get(p, {}), o.by_resource) for p, o in own.items()},
            figures.by_resource,
        ),
        products=lambda pool, budgeted: _less(
            figures.products(pool, budgeted),
            own[pool].products.in_use(budgeted) if pool in own else {},
        ),
        memory=_Overlay(
            {
                p: [max(0, m[0] - o.memory[0]), max(0, m[1] - o.memory[1])]
                for p, o in own.items()
                for m in [figures.memory.get(p) or [0, 0]]
            },
            figures.memory,
        ),
    )


V = TypeVar("V")


class _Overlay(Mapping[str, V]):
    """``base`` with a few pools' figures replaced, without copying ``base`` (one object's view)."""

    def __init__(self, top: Mapping[str, V], base: Mapping[str, V]) -> None:
        self._top, self._base = top, base

    def __getitem__(self, key: str) -> V:
        return self._top[key] if key in self._top else self._base[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._top
        yield from (k for k in self._base if k not in self._top)

    def __len__(self) -> int:
        return len(self._top) + sum(1 for k in self._base if k not in self._top)


def without_in_queue(own: Mapping[str, Own], quota: dict[str, Any]) -> None:
    """Under ``teamsFrom: kueue`` the pool is the ClusterQueue the object's namespace's LocalQueue feeds
    (``kueue``), whose usage counts every pod of that namespace: the object's own pods, all in its
    namespace, come off ``org.quota``'s figures there."""
    if quota.get("source") != "kueue" or not quota.get("clusterQueue") or not own:
        return
    mine = Own()
    for o in own.values():
        mine.devices += o.devices
        for name, n in o.by_resource.items():
            mine.by_resource[name] = mine.by_resource.get(name, 0) + n
        mine.products.merge(o.products)
    quota["gpusInUse"] = max(0, quota["gpusInUse"] - mine.devices)
    quota["gpusInUseByResource"] = _less(quota["gpusInUseByResource"], mine.by_resource)
    budgeted = list(quota["gpusInUseByProduct"])
    quota["gpusInUseByProduct"] = _less(quota["gpusInUseByProduct"], mine.products.in_use(budgeted))


def _less(total: Mapping[str, int], own: Mapping[str, int]) -> dict[str, int]:
    return {name: clamp(max(0, n - own.get(name, 0))) for name, n in total.items()}
