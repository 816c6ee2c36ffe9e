"""The AI-specific CEL bindings: ``workload`` (what the object runs), ``inventory`` (cluster usage) and
``org`` (the organisation's facts about this request: its team and quota, residency zone and regions,
the region of each data location; shape in ``policyengine/org.py``).

All are computed once per request from plain data and shared by every policy. The inventory view and
the GPU usage per quota pool depend only on the inventory and the config, so they are computed once per
inventory, not per request.
Each model of ``workload.models`` pinned by sha256 also carries ``signature``: ``{verified, signer,
reason}`` from the attestation store (the provenance verdict for that digest at the request's ``now``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from policyengine.inventory import inventory_view
from policyengine.model import Inventory, Request
from policyengine.org import OrgRules, pool_usage, pool_usage_by_resource
from policyengine.policyset import PolicySet
from policyengine.provenance import AttestationStore
from policyengine.trust import load_attestation_store
from policyengine.workloads import describe

# Extra CEL bindings computed once per request from the request, the inventory, the config and the
# verification time (the engine's ``now``: signatures are judged at it).
ViewProvider = Callable[[Request, Inventory, Mapping[str, Any], datetime], Mapping[str, Any]]
# The inventory view, the GPUs in use per quota pool (``org.pool_usage``) and per pool and resource.
_InventoryFacts = tuple[dict[str, Any], dict[str, int], dict[str, dict[str, int]]]


class _InventoryViews:
    """Remembers the facts of the last inventory seen (the webhook swaps inventories as a whole)."""

    def __init__(self) -> None:
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
        facts = (view, pool_usage(in_use, rules.teams), pool_usage_by_resource(by_resource, rules.teams))
        with self._lock:
            self._last = (inventory, config, facts)
        return facts


NO_STORE = {
    "verified": False,
    "signer": "",
    "reason": "no attestation store is configured (GovernanceConfig spec.models.attestations)",
}


def views_for(policy_set: PolicySet, attestations: AttestationStore | None = None) -> ViewProvider:
    """The provider the engine calls once per request for ``workload``, ``inventory`` and ``org``."""
    inventories = _InventoryViews()
    set_rules = OrgRules.from_config(policy_set.config)  # the engine passes this set's config

    def signature(digest: str, now: datetime) -> dict[str, Any]:
        return attestations.lookup(digest, now) if attestations is not None else dict(NO_STORE)

    def provide(
        request: Request, inventory: Inventory, config: Mapping[str, Any], now: datetime
    ) -> Mapping[str, Any]:
        obj = request.object if request.object is not None else request.old_object
        obj = obj if isinstance(obj, Mapping) else {}
        workload = describe(obj, config)
        for model in workload["models"]:
            model["signature"] = signature(model["sha256"], now) if model["sha256"] else None
        rules = set_rules if config is policy_set.config else OrgRules.from_config(config)
        inventory_facts, pools, pools_by_resource = inventories.view(inventory, config, rules)
        org = rules.view(
            request.namespace, obj, inventory, pools, workload["dataLocations"], pools_by_resource
        )
        return {"workload": workload, "inventory": inventory_facts, "org": org}

    return provide


def default_views(policy_set: PolicySet) -> ViewProvider:
    """The views every engine gets unless told otherwise: ``workload`` and ``inventory``, with the
    attestation store the policy set's GovernanceConfig names. Raises LoadError for bad trust material."""
    store = load_attestation_store(policy_set.config, policy_set.config_line)
    return views_for(policy_set, store)
