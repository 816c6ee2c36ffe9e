"""The AI-specific CEL bindings: ``workload`` (what the object runs), ``inventory`` (cluster usage) and
``org`` (the organisation's facts about this request: its team and quota, residency zone and regions,
the region of each data location; shape in ``policyengine/org.py``).

All are computed once per request from plain data and shared by every policy. The inventory view and
the GPU usage per quota pool depend only on the inventory and the config, so they are computed once per
inventory, not per request.
GPU memory (``workload.gpuMemory``, ``policyengine/workloads/memory.py``) is charged the same way.
Once the team is known, ``workload.gpus.byProduct`` also counts unpinned GPUs against every product the
team budgets (``workloads/byproduct.py``), and ``charge.byProduct`` follows it.
On UPDATE, ``workload.gpus.charge`` is what the change adds to the team's usage (new minus old, never
below 0; ``policyengine/workloads/charge.py``); otherwise it is the whole workload. A scale-subresource
UPDATE reaches the views as its parent workload's UPDATE (``policyengine/scale.py``), charged the same way.
Each model of ``workload.models`` pinned by sha256 also carries ``signature``: ``{verified, signer,
reason, mode, identity, issuer}`` from the attestation store (the provenance verdict for that digest at
the request's ``now``; ``mode`` is key, certificate or keyless, ``identity`` and ``issuer`` are the
keyless signer's OIDC subject and issuer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policyengine.cel.deferred import DEFER_MARK
from policyengine.charging import suspended_charge, workload_key
from policyengine.inventory import inventory_view
from policyengine.kueue import KueueBudgets, teams_from_kueue
from policyengine.memory_usage import memory_by_team
from policyengine.model import Inventory, Request
from policyengine.org import OrgRules, pool_memory, pool_usage, pool_usage_by_resource
from policyengine.ownusage import Own, OwnUsage, PoolFigures, without, without_in_queue
from policyengine.policyset import PolicySet
from policyengine.productusage import ProductUsage, pool_product_usage
from policyengine.provenance import AttestationStore, unverified_lookup
from policyengine.trust import load_attestation_store
from policyengine.workloads import ClaimObjects, DeviceMemory, GpuRules, describe, describe_rules
from policyengine.workloads.adminaccess import admin_access_requests
from policyengine.workloads.byproduct import budget_products, charge_products
from policyengine.workloads.charge import no_charge, update_charge
from policyengine.workloads.claims import DeviceClasses
from policyengine.workloads.located import Located
from policyengine.workloads.memory import memory_charge
from policyengine.workloads.references import with_env_locations
from policyengine.workloads.volumes import StorageClasses

# Extra CEL bindings computed once per request from the request, the inventory, the config and the
# verification time (the engine's ``now``: signatures are judged at it).
ViewProvider = Callable[[Request, Inventory, Mapping[str, Any], datetime], Mapping[str, Any]]


@dataclass(frozen=True)
class _InventoryFacts:
    """What depends only on the inventory and the config, computed once per inventory."""

    view: dict[str, Any]  # the ``inventory`` CEL variable
    pools: dict[str, int]  # GPUs in use per quota pool (``org.pool_usage``)
    pools_by_resource: dict[str, dict[str, int]]  # ... and per resource
    claims: ClaimObjects  # DRA claims, templates, DeviceClasses and PodGroups by name
    products: dict[str, ProductUsage]  # devices in use per pool and product
    kueue: KueueBudgets | None  # the Kueue budgets when spec.gpu.teamsFrom is kueue
    memory: dict[str, list[int]]  # GPU memory in use per pool (``org.pool_memory``)
    slices: DeviceMemory  # the ResourceSlices' device memory
    storage_classes: StorageClasses  # generic ephemeral volumes of bucket drivers (workloads.volumes)
    own: OwnUsage | None = None  # existing objects only: what each workload's own pods hold

    def figures(self) -> PoolFigures:
        products = self.products
        return PoolFigures(
            self.pools,
            self.pools_by_resource,
            lambda pool, budgeted: products.get(pool, ProductUsage()).in_use(budgeted),
            self.memory,
        )


class _InventoryViews:
    """Remembers the facts of the last inventory seen (the webhook swaps inventories as a whole)."""

    def __init__(self, *, existing: bool = False) -> None:
        self.existing = existing
        self._lock = threading.Lock()
        self._last: tuple[Inventory, Mapping[str, Any], _InventoryFacts] | None = None

    def view(self, inventory: Inventory, config: Mapping[str, Any], rules: OrgRules) -> _InventoryFacts:
        with self._lock:
            last = self._last
            if last is not None and last[0] is inventory and last[1] is config:
                return last[2]
        view = inventory_view(inventory, config)
        in_use = {team: entry["gpusInUse"] for team, entry in view["teams"].items()}
        by_resource = {team: entry["gpusInUseByResource"] for team, entry in view["teams"].items()}
        claims, slices = ClaimObjects(inventory.objects), DeviceMemory(inventory.objects)
        facts = _InventoryFacts(
            view=view,
            pools=pool_usage(in_use, rules.teams),
            pools_by_resource=pool_usage_by_resource(by_resource, rules.teams),
            claims=claims,
            products=pool_product_usage(inventory, config, rules.teams),
            kueue=KueueBudgets.build(inventory, config) if teams_from_kueue(config) else None,
            memory=pool_memory(memory_by_team(inventory, config, slices, claims), rules.teams),
            slices=slices,
            storage_classes=StorageClasses(inventory.objects),
            own=_own_usage(inventory, config, rules, slices, claims) if self.existing else None,
        )
        with self._lock:
            self._last = (inventory, config, facts)
        return facts


NO_STORE = unverified_lookup("no attestation store is configured (GovernanceConfig spec.models.attestations)")


def _own_usage(
    inventory: Inventory,
    config: Mapping[str, Any],
    rules: OrgRules,
    slices: DeviceMemory,
    claims: ClaimObjects,
) -> OwnUsage:
    limits = [t for t in rules.teams.values() if isinstance(t, Mapping)]
    return OwnUsage.build(
        inventory,
        config,
        rules.teams,
        products=rules.kueue or any(budget_products(t) for t in limits),
        memory=any("gpuMemory" in t for t in limits),
        slices=slices,
        claims=claims,
    )


def _own_identities(request: Request, obj: Mapping[str, Any]) -> list[str]:
    """The identities an object's pods name it by (``charging.pod_identities``): its key and its uid."""
    meta = obj.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    return [workload_key(request), *(["uid:" + uid] if isinstance(uid, str) and uid else [])]


def views_for(
    policy_set: PolicySet,
    attestations: AttestationStore | None = None,
    *,
    existing: bool = False,
    defer: bool = False,
) -> ViewProvider:
    """The provider the engine calls once per request for ``workload``, ``inventory`` and ``org``.
    ``existing`` (a scan): each object already exists, so its own pods are left out of its pool's usage
    (``policyengine/ownusage.py``); at admission they are not, a new object having none. ``defer``:
    the data locations may be built when an expression that may read them first runs (``_first_read``)."""
    inventories = _InventoryViews(existing=existing)
    set_rules = OrgRules.from_config(policy_set.config)  # the engine passes this set's config
    set_workload_rules = describe_rules(policy_set.config)

    def signature(digest: str, now: datetime) -> dict[str, Any]:
        return attestations.lookup(digest, now) if attestations is not None else dict(NO_STORE)

    def provide(
        request: Request, inventory: Inventory, config: Mapping[str, Any], now: datetime
    ) -> Mapping[str, Any]:
        obj = request.object if request.object is not None else request.old_object
        obj = obj if isinstance(obj, Mapping) else {}
        same = config is policy_set.config
        rules = set_rules if same else OrgRules.from_config(config)
        described = set_workload_rules if same else describe_rules(config)
        facts = inventories.view(inventory, config, rules)
        located = rules.locator(deferred=(later := defer and _first_read(inventory, request, obj)))
        workload = _describe(obj, request, config, facts, described, located)
        workload["draAdminAccess"] = admin_access_requests(obj, config)
        charged = _charge_update(request, workload, config, facts, described)
        before = suspended_charge(request, workload, charged, config)
        for model in workload["models"]:
            model["signature"] = signature(model["sha256"], now) if model["sha256"] else None
        own: dict[str, Own] = facts.own.held(_own_identities(request, obj)) if facts.own is not None else {}
        figures = without(own, facts.figures())
        org = rules.view(
            request.namespace,
            obj,
            inventory,
            figures.pools,
            None if later else workload["dataLocations"],
            figures.by_resource,
            figures.products,
            facts.kueue,
            sorted(workload["gpus"]["byResource"]),
            figures.memory,
            located.runs,
        )
        without_in_queue(own, org["quota"])
        charge_products(workload["gpus"], before, budget_products(org["quota"]["limits"]))
        if workload["isTemplate"]:  # another object runs (and is charged for) a template's pods
            workload["gpus"]["charge"] = no_charge(workload["gpus"])
            workload["gpuMemory"]["charge"] = 0
        views: dict[str, Any] = {"workload": workload, "inventory": facts.view, "org": org}
        return (
            {**views, DEFER_MARK: _Locations(workload, org["residency"], rules, located)} if later else views
        )

    return provide


def _first_read(inventory: Inventory, request: Request, obj: Mapping[str, Any]) -> bool:
    """Whether, with a backend that defers, the data locations are built when first read (``_Locations``):
    unless the request is bound to a residency zone, where the residency pack reads them and one walk
    costs less than two (a choice of cost only: the views are the same either way)."""
    return not OrgRules.zone_of(inventory.namespaces.get(request.namespace), obj)


class _Locations:
    """Fills ``workload.dataLocations`` and ``org.residency.dataLocations`` when an expression that may
    read them first runs (``cel.deferred``); until then both are None. Filled once: the env walks the
    view put off, then the regions, exactly as an eager view builds them."""

    __slots__ = ("_failed", "_located", "_partial", "_residency", "_rules", "_workload")

    def __init__(
        self, workload: dict[str, Any], residency: dict[str, Any], rules: OrgRules, located: Located
    ) -> None:
        self._workload, self._residency, self._rules = workload, residency, rules
        self._located: Located | None = located
        self._failed = ""
        self._workload["dataLocations"], self._partial = None, workload["dataLocations"]

    def __call__(self) -> None:
        """Raises ValueError when they cannot be built, at this call and every later one, so that every
        expression that may read them fails (the backend makes it the expression's error)."""
        located, self._located = self._located, None
        if located is None:
            if self._failed:
                raise ValueError(self._failed)
            return
        try:
            data = with_env_locations(self._partial, located)
            regions = self._rules.located(data, located.runs)
        except Exception as err:
            self._failed = f"the data locations cannot be read: {type(err).__name__}: {err}"
            raise ValueError(self._failed) from None
        self._workload["dataLocations"], self._residency["dataLocations"] = data, regions


def _describe(
    obj: Mapping[str, Any],
    request: Request,
    config: Mapping[str, Any],
    facts: _InventoryFacts,
    rules: tuple[GpuRules, DeviceClasses],
    located: Located,
) -> dict[str, Any]:
    """The ``workload`` view of the request's object with the inventory's facts."""
    claims, namespace, slices, classes = facts.claims, request.namespace, facts.slices, facts.storage_classes
    return describe(obj, config, claims, namespace, slices, classes, config_rules=rules, located=located)


def _charge_update(
    request: Request,
    workload: dict[str, Any],
    config: Mapping[str, Any],
    facts: _InventoryFacts,
    rules: tuple[GpuRules, DeviceClasses],
) -> dict[str, Any] | None:
    """On UPDATE the old object's GPUs are already in the team's usage: charge only the growth. The old
    object is described as the new one is (bounded by its size) and only its GPU figures are kept, so its
    unreadable values are not findings about the new object (they count 0, which charges more, not less)."""
    old = request.old_object
    if (
        request.operation != "UPDATE"
        or not isinstance(request.object, Mapping)
        or not isinstance(old, Mapping)
    ):
        return None
    # Its data locations are never read: its env walk is left undone (a ``Located`` nothing completes).
    unread = Located(_unlocated, pending=[])
    described = describe(
        old, config, facts.claims, request.namespace, facts.slices, config_rules=rules, located=unread
    )
    before: dict[str, Any] = described["gpus"]
    workload["gpus"]["charge"] = update_charge(workload["gpus"], before)
    workload["gpuMemory"]["charge"] = memory_charge(workload["gpuMemory"], described["gpuMemory"])
    return before


def _unlocated(uri: str) -> str:
    return ""


def default_views(policy_set: PolicySet) -> ViewProvider:
    """The views every engine gets unless told otherwise: ``workload`` and ``inventory``, with the
    attestation store the policy set's GovernanceConfig names. Raises LoadError for bad trust material."""
    store = load_attestation_store(policy_set.config, policy_set.config_line)
    return views_for(policy_set, store)
