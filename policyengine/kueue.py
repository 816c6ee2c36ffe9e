"""Kueue's quotas as the team budgets (``spec.gpu.teamsFrom: kueue``): the ClusterQueue a workload's
LocalQueue points to is its GPU pool, whose nominal quotas are the budget and whose namespaces' pods are
the usage. Read from ClusterQueue, LocalQueue, ResourceFlavor and Kueue ``Configuration`` objects of
the inventory; what is mapped and what is not is in docs/gpu-accounting.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.inventory import TEAM_LABEL, inventory_view
from policyengine.model import Inventory
from policyengine.productusage import ProductUsage, team_product_usage
from policyengine.workloads.byproduct import budget_products
from policyengine.workloads.claims import DeviceClasses
from policyengine.workloads.pods import GpuRules
from policyengine.workloads.values import as_dict, as_list, gpu_quantity

__all__ = ["QUEUE_LABEL", "KueueBudgets", "teams_from_kueue"]

KUEUE_GROUP = "kueue.x-k8s.io"
CONFIG_GROUP = "config.kueue.x-k8s.io"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# Kueue's LocalQueueDefaulting: a workload without the label goes to the namespace's LocalQueue "default".
DEFAULT_QUEUE = "default"
PRODUCT_LABEL = "nvidia.com/gpu.product"
# The CRD's own bounds (kueue.x-k8s.io ClusterQueue validation): an object past them is not one the API
# server would store, so it is reported, not read; they also bound the work a hostile inventory causes.
MAX_GROUPS, MAX_FLAVORS, MAX_RESOURCES = 16, 64, 64
MAX_MAPPINGS = 64
# Namespace usage is computed by the inventory view keyed by a team name no label can spell.
_NS = "\x00namespace:"


def teams_from_kueue(config: Mapping[str, Any] | None) -> bool:
    cfg = as_dict(config)
    if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
        cfg = cfg["spec"]
    return as_dict(cfg.get("gpu")).get("teamsFrom") == "kueue"


def _group(obj: Mapping[str, Any]) -> str:
    api = obj.get("apiVersion")
    return api.split("/", 1)[0] if isinstance(api, str) and "/" in api else ""


def _name(obj: Any) -> str:
    name = as_dict(as_dict(obj).get("metadata")).get("name")
    return name if isinstance(name, str) else ""


@dataclass
class Pool:
    """One ClusterQueue as a GPU budget, in the workload view's resource names."""

    name: str
    quota: int = 0
    by_resource: dict[str, int] = field(default_factory=dict)
    by_product: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _mappings(objects: Iterable[Any], config: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Kueue resource name -> DRA device classes (``resources.deviceClassMappings`` of Kueue's
    Configuration in the inventory, else ``spec.gpu.kueue.deviceClassMappings`` of the GovernanceConfig)."""
    cfg = as_dict(config)
    spec = as_dict(cfg.get("spec")) if "gpu" not in cfg else cfg
    given = as_list(as_dict(as_dict(spec.get("gpu")).get("kueue")).get("deviceClassMappings"))
    for obj in objects:
        if isinstance(obj, Mapping) and obj.get("kind") == "Configuration" and _group(obj) == CONFIG_GROUP:
            given = as_list(as_dict(obj.get("resources")).get("deviceClassMappings"))
    out: dict[str, list[str]] = {}
    for entry in given[:MAX_MAPPINGS]:
        name, classes = as_dict(entry).get("name"), as_list(as_dict(entry).get("deviceClassNames"))
        if isinstance(name, str):
            out[name] = [c for c in classes[:MAX_MAPPINGS] if isinstance(c, str)]
    return out


class _Names:
    """Which Kueue resource names are GPUs, and the workload view's names each stands for."""

    def __init__(self, config: Mapping[str, Any] | None, mappings: Mapping[str, list[str]]) -> None:
        self.rules = GpuRules.from_config(config)
        self.classes = DeviceClasses.from_config(config)
        self.mappings = mappings

    def of(self, resource: str) -> list[str]:
        if resource in self.mappings:
            names = {self.classes.resource(c) for c in self.mappings[resource]} - {""}
            return sorted(names)
        return [resource] if self.rules.is_gpu(resource) else []


def _pool(cq: Mapping[str, Any], flavors: Mapping[str, Any], names: _Names) -> Pool:
    pool = Pool(_name(cq))
    groups = as_list(as_dict(cq.get("spec")).get("resourceGroups"))
    if len(groups) > MAX_GROUPS:
        pool.problems.append(f"has {len(groups)} resourceGroups, over Kueue's {MAX_GROUPS}: not read")
        return pool
    for g, group in enumerate(groups):
        group_flavors = as_list(as_dict(group).get("flavors"))
        if len(group_flavors) > MAX_FLAVORS:
            pool.problems.append(
                f"resourceGroups[{g}] has {len(group_flavors)} flavors, over Kueue's {MAX_FLAVORS}: not read"
            )
            continue
        for f, flavor in enumerate(group_flavors):
            _add_flavor(pool, as_dict(flavor), f"resourceGroups[{g}].flavors[{f}]", flavors, names)
    return pool


def _add_flavor(
    pool: Pool, flavor: Mapping[str, Any], path: str, flavors: Mapping[str, Any], names: _Names
) -> None:
    resources = as_list(flavor.get("resources"))
    if len(resources) > MAX_RESOURCES:
        pool.problems.append(f"{path} has {len(resources)} resources, over Kueue's {MAX_RESOURCES}: not read")
        return
    labels = as_dict(as_dict(as_dict(flavors.get(str(flavor.get("name")))).get("spec")).get("nodeLabels"))
    product = labels.get(PRODUCT_LABEL)
    for r, resource in enumerate(resources):
        resource = as_dict(resource)
        targets = names.of(str(resource.get("name")))
        if not targets:
            continue
        problems: list[dict[str, Any]] = []
        n = gpu_quantity(resource.get("nominalQuota", 0), f"{path}.resources[{r}].nominalQuota", problems)
        pool.problems.extend(f"{p['path']}: {p['message']}" for p in problems)
        pool.quota += n
        for target in targets:
            pool.by_resource[target] = pool.by_resource.get(target, 0) + n
        if isinstance(product, str) and product:
            pool.by_product[product] = pool.by_product.get(product, 0) + n


@dataclass(frozen=True)
class KueueBudgets:
    """The Kueue objects of one inventory, read once: LocalQueues, ClusterQueue pools and their usage."""

    local_queues: Mapping[tuple[str, str], str]  # (namespace, LocalQueue) -> ClusterQueue
    pools: Mapping[str, Pool]
    in_use: Mapping[str, int]
    in_use_by_resource: Mapping[str, Mapping[str, int]]
    in_use_by_product: Mapping[str, ProductUsage]

    @classmethod
    def build(cls, inventory: Inventory, config: Mapping[str, Any] | None) -> KueueBudgets:
        objects = [o for o in inventory.objects if isinstance(o, Mapping) and _group(o) == KUEUE_GROUP]
        by_kind: dict[str, dict[str, Mapping[str, Any]]] = {}
        local_queues: dict[tuple[str, str], str] = {}
        for obj in objects:
            if obj.get("kind") == "LocalQueue":
                namespace = as_dict(obj.get("metadata")).get("namespace")
                target = as_dict(obj.get("spec")).get("clusterQueue")
                local_queues[(str(namespace or "default"), _name(obj))] = str(target or "")
            else:
                by_kind.setdefault(str(obj.get("kind")), {})[_name(obj)] = obj
        names = _Names(config, _mappings(inventory.objects, config))
        flavors = by_kind.get("ResourceFlavor", {})
        pools = {name: _pool(cq, flavors, names) for name, cq in by_kind.get("ClusterQueue", {}).items()}
        in_use, by_resource, by_product = _usage(inventory, config, local_queues)
        return cls(local_queues, pools, in_use, by_resource, by_product)

    def quota(
        self, namespace: str, obj: Mapping[str, Any], limits: Mapping[str, Any], asked: Iterable[str]
    ) -> dict[str, Any]:
        """``org.quota`` for a request: the ClusterQueue's budgets in place of the config's quota keys
        (the team's other limits stay); ``problems`` says why no ClusterQueue budget applies."""
        meta = as_dict(obj.get("metadata"))
        queue = as_dict(meta.get("labels")).get(
            QUEUE_LABEL, as_dict(meta.get("annotations")).get(QUEUE_LABEL)
        )
        # Kueue's pools replace the team's budgets; a team's gpuMemory has no ClusterQueue counterpart
        # (its usage is per team pool), so it does not apply under teamsFrom kueue.
        replaced = ("quota", "quotaByResource", "quotaByProduct", "gpuMemory")
        kept = {k: v for k, v in limits.items() if k not in replaced}
        out: dict[str, Any] = {"source": "kueue", "localQueue": "", "clusterQueue": "", "problems": []}
        out.update(team="", limits=kept, gpusInUse=0, gpusInUseByResource={}, gpusInUseByProduct={})
        if not isinstance(queue, str) or not queue:
            if (namespace, DEFAULT_QUEUE) not in self.local_queues:
                out["problems"].append(
                    f"it names no LocalQueue (label {QUEUE_LABEL}) and namespace {namespace} has no LocalQueue "
                    f"{DEFAULT_QUEUE!r}: Kueue would not manage it, and its GPUs would be outside every ClusterQueue's quota"
                )
                return out
            queue = DEFAULT_QUEUE
        out["localQueue"] = f"{namespace}/{queue}"
        cq_name = self.local_queues.get((namespace, queue))
        if cq_name is None:
            out["problems"].append(
                f"LocalQueue {queue} is not in namespace {namespace} (--inventory or the cluster)"
            )
            return out
        pool = self.pools.get(cq_name)
        out["clusterQueue"] = out["team"] = cq_name
        if pool is None:
            out["problems"].append(
                f"LocalQueue {namespace}/{queue} points to ClusterQueue {cq_name}, which does not exist"
            )
            return out
        out["problems"].extend(f"ClusterQueue {cq_name} {p}" for p in pool.problems)
        uncovered = sorted(r for r in asked if r not in pool.by_resource)
        if uncovered:
            out["problems"].append(
                f"ClusterQueue {cq_name} has no quota for {', '.join(uncovered)}: Kueue would never admit it"
            )
        out["limits"] = {
            **kept,
            "quota": pool.quota,
            "quotaByResource": dict(sorted(pool.by_resource.items())),
        }
        if pool.by_product:
            out["limits"]["quotaByProduct"] = dict(sorted(pool.by_product.items()))
        held = dict.fromkeys(pool.by_resource, 0)
        held.update(self.in_use_by_resource.get(cq_name, {}))
        out.update(gpusInUse=self.in_use.get(cq_name, 0), gpusInUseByResource=dict(sorted(held.items())))
        products = self.in_use_by_product.get(cq_name, ProductUsage())
        out["gpusInUseByProduct"] = products.in_use(budget_products(out["limits"]))
        return out


def _usage(
    inventory: Inventory, config: Mapping[str, Any] | None, local_queues: Mapping[tuple[str, str], str]
) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, ProductUsage]]:
    """GPUs held per ClusterQueue: every non-terminated pod of every namespace with a LocalQueue that
    points to it, counted as the team usage is (the inventory view, keyed here by namespace)."""
    namespaces = {ns for ns, _ in local_queues}
    relabelled = Inventory(
        namespaces={ns: {"metadata": {"name": ns, "labels": {TEAM_LABEL: _NS + ns}}} for ns in namespaces},
        objects=inventory.objects,
    )
    teams = inventory_view(relabelled, config)["teams"]
    team_products = team_product_usage(relabelled, config)
    queues_of: dict[str, set[str]] = {}
    for (ns, _), cq in local_queues.items():
        queues_of.setdefault(ns, set()).add(cq)
    in_use: dict[str, int] = {}
    by_resource: dict[str, dict[str, int]] = {}
    by_product: dict[str, ProductUsage] = {}
    for ns, cqs in queues_of.items():
        entry = as_dict(teams.get(_NS + ns))
        # A namespace whose LocalQueues point to several ClusterQueues is charged to each: the safe side.
        for cq in cqs:
            in_use[cq] = in_use.get(cq, 0) + int(entry.get("gpusInUse", 0))
            held = by_resource.setdefault(cq, {})
            for name, n in as_dict(entry.get("gpusInUseByResource")).items():
                held[name] = held.get(name, 0) + n
            if (products := team_products.get(_NS + ns)) is not None:
                by_product.setdefault(cq, ProductUsage()).merge(products)
    return in_use, by_resource, by_product
