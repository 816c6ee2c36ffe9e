"""The AI-specific CEL bindings: ``workload`` (what the object runs) and ``inventory`` (cluster usage).

Both are computed once per request from plain data and shared by every policy. The inventory view
depends only on the inventory and the config, so it is computed once per inventory, not per request.
Each model of ``workload.models`` pinned by sha256 also carries ``signature``: ``{verified, signer,
reason}`` from the attestation store (the provenance verdict for that digest).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from policyengine.inventory import inventory_view
from policyengine.model import Inventory, Request
from policyengine.policyset import PolicySet
from policyengine.provenance import AttestationStore
from policyengine.trust import load_attestation_store
from policyengine.workloads import describe

# Extra CEL bindings computed once per request from the request, the inventory and the config.
ViewProvider = Callable[[Request, Inventory, Mapping[str, Any]], Mapping[str, Any]]


class _InventoryViews:
    """Remembers the view of the last inventory seen (the webhook swaps inventories as a whole)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[Inventory, Mapping[str, Any], dict[str, Any]] | None = None

    def view(self, inventory: Inventory, config: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            last = self._last
            if last is not None and last[0] is inventory and last[1] is config:
                return last[2]
        view = inventory_view(inventory, config)
        with self._lock:
            self._last = (inventory, config, view)
        return view


NO_STORE = {
    "verified": False,
    "signer": "",
    "reason": "no attestation store is configured (GovernanceConfig spec.models.attestations)",
}


def views_for(policy_set: PolicySet, attestations: AttestationStore | None = None) -> ViewProvider:
    """The provider the engine calls once per request for ``workload`` and ``inventory``."""
    inventories = _InventoryViews()

    def signature(digest: str) -> dict[str, Any]:
        return attestations.lookup(digest) if attestations is not None else dict(NO_STORE)

    def provide(request: Request, inventory: Inventory, config: Mapping[str, Any]) -> Mapping[str, Any]:
        obj = request.object if request.object is not None else request.old_object
        workload = describe(obj if isinstance(obj, Mapping) else {}, config)
        for model in workload["models"]:
            model["signature"] = signature(model["sha256"]) if model["sha256"] else None
        return {"workload": workload, "inventory": inventories.view(inventory, config)}

    return provide


def default_views(policy_set: PolicySet) -> ViewProvider:
    """The views every engine gets unless told otherwise: ``workload`` and ``inventory``, with the
    attestation store the policy set's GovernanceConfig names. Raises LoadError for bad trust material."""
    store = load_attestation_store(policy_set.config, policy_set.config_line)
    return views_for(policy_set, store)
