"""Where the webhook gets cluster state: a port (``InventorySource``) and the static adapter.

``StaticInventory`` serves a fixed Inventory (``--inventory FILE``, or an empty one). The cluster adapter,
which lists and watches the Kubernetes API, is ``webhook.cluster.ClusterInventory``.

A request's namespace missing from the inventory is served as an existing namespace without labels, as
``check`` does for a namespace a manifest names but nobody defines: the API server has already accepted
the namespace, and a watch that lags by a moment must not turn a namespace rule into an error.
"""

from __future__ import annotations

from typing import Any, Protocol

from policyengine.model import Inventory


class InventorySource(Protocol):
    def current(self) -> Inventory: ...

    def status(self) -> dict[str, Any]:
        """``{"ready": bool, ...detail}`` for /readyz."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class StaticInventory:
    def __init__(self, inventory: Inventory | None = None, *, origin: str = "none") -> None:
        self._inventory = inventory or Inventory()
        self._origin = origin

    def current(self) -> Inventory:
        return self._inventory

    def status(self) -> dict[str, Any]:
        return {
            "ready": True,
            "source": self._origin,
            "namespaces": len(self._inventory.namespaces),
            "objects": len(self._inventory.objects),
        }

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def with_namespace(inventory: Inventory, namespace: str) -> Inventory:
    """``inventory`` with ``namespace`` present (added without labels when missing)."""
    if not namespace or namespace in inventory.namespaces:
        return inventory
    namespaces = dict(inventory.namespaces)
    namespaces[namespace] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    return Inventory(namespaces=namespaces, objects=inventory.objects)
