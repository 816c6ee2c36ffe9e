"""GPUs in use per product, per team and quota pool: the usage side of per-product team budgets.

Each non-terminated pod's devices (``inventory.pods_held``) are of its node's product when the pod is
bound (``spec.nodeName``) and the inventory has that Node with a product label (``nvidia.com/gpu.product``,
the GKE TPU label, the instance type): where the pod runs is a fact, its spec only a wish. Otherwise its
products are read from its spec as admission reads a request's (``workload.podTemplates[].gpuProducts``):
devices that may be several products count against each, and devices no product pins count against every
product the team budgets that the pod's node affinity does not exclude (``ProductUsage.in_use``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.inventory import DEFAULT_TEAM, pods_held, team_of
from policyengine.model import Inventory
from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.accelerators import PRODUCT_LABELS
from policyengine.workloads.byproduct import expand
from policyengine.workloads.values import as_dict, clamp

__all__ = ["ProductUsage", "node_products", "pod_products", "pool_product_usage"]


@dataclass
class ProductUsage:
    """Devices in use by product (``pinned``) and those no product pins, by the products excluded."""

    pinned: dict[str, int] = field(default_factory=dict)
    unpinned: dict[tuple[str, ...], int] = field(default_factory=dict)

    def add(self, products: Sequence[str] | None, excluded: Sequence[str], gpus: int) -> None:
        if products is None:
            key = tuple(sorted(set(excluded)))
            self.unpinned[key] = clamp(self.unpinned.get(key, 0) + gpus)
            return
        for product in products:
            self.pinned[product] = clamp(self.pinned.get(product, 0) + gpus)

    def merge(self, other: ProductUsage) -> None:
        for product, n in other.pinned.items():
            self.pinned[product] = clamp(self.pinned.get(product, 0) + n)
        for key, n in other.unpinned.items():
            self.unpinned[key] = clamp(self.unpinned.get(key, 0) + n)

    def in_use(self, budgeted: Sequence[str]) -> dict[str, int]:
        """Per product: pinned devices, plus unpinned ones for every budgeted product they could be."""
        unpinned = [{"gpus": n, "excluded": list(key)} for key, n in self.unpinned.items()]
        return expand(self.pinned, unpinned, budgeted)


def node_products(inventory: Inventory) -> dict[str, list[str]]:
    """Each Node's products: the values of its product labels (nodes without one are left out)."""
    nodes: dict[str, list[str]] = {}
    for obj in inventory.objects:
        if not isinstance(obj, Mapping) or obj.get("kind") != "Node":
            continue
        meta = as_dict(obj.get("metadata"))
        labels = as_dict(meta.get("labels"))
        values = sorted({v for k in PRODUCT_LABELS if isinstance(v := labels.get(k), str) and v})
        if isinstance(meta.get("name"), str) and values:
            nodes[meta["name"]] = values
    return nodes


def pod_products(
    inventory: Inventory, config: Mapping[str, Any] | None
) -> Iterator[tuple[str, Mapping[str, Any], list[str] | None, list[str], int]]:
    """(namespace, pod, its products or None when none is pinned, the products excluded, devices) of each
    pod holding devices (module docstring)."""
    nodes = node_products(inventory)
    claims = ClaimObjects(inventory.objects)
    for namespace, pod, held in pods_held(inventory, config):
        gpus = clamp(sum(held.values()))
        if gpus <= 0:
            continue
        node = as_dict(pod.get("spec")).get("nodeName")
        if isinstance(node, str) and node in nodes:
            yield namespace, pod, nodes[node], [], gpus
            continue
        view = describe(pod, config, claims, namespace)
        chosen: dict[str, Any] = view["podTemplates"][0]["gpuProducts"] if view["podTemplates"] else {}
        if chosen.get("pinned"):
            yield namespace, pod, chosen["allowed"], [], gpus
        else:
            yield namespace, pod, None, chosen.get("excluded", []), gpus


def team_product_usage(inventory: Inventory, config: Mapping[str, Any] | None) -> dict[str, ProductUsage]:
    """Devices in use per team and product (module docstring)."""
    teams: dict[str, ProductUsage] = {}
    for namespace, _, products, excluded, gpus in pod_products(inventory, config):
        teams.setdefault(team_of(inventory, namespace), ProductUsage()).add(products, excluded, gpus)
    return teams


def pool_product_usage(
    inventory: Inventory, config: Mapping[str, Any] | None, configured: Mapping[str, Any]
) -> dict[str, ProductUsage]:
    """Devices in use per quota pool and product, pooled as ``org.pool_usage`` pools teams: a team
    without an entry in spec.gpu.teams is charged to the default pool."""
    pools: dict[str, ProductUsage] = {}
    for team, usage in team_product_usage(inventory, config).items():
        pool = team if team in configured and team != DEFAULT_TEAM else DEFAULT_TEAM
        pools.setdefault(pool, ProductUsage()).merge(usage)
    return pools
