"""The objects Kyverno's ``resource.Get`` / ``resource.List`` read: the inventory's (``--inventory``,
``serve --kube``), the same objects ``namespaceObject`` and the DRA claims come from, never a live call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.cel.lib.kyverno_resource import Finder
from policyengine.match import plural
from policyengine.model import Inventory


def inventory_finder(inventory: Inventory) -> Finder:
    """A Finder over ``inventory``, indexed by (apiVersion, resource) on its first call."""
    index: dict[tuple[str, str], list[Mapping[str, Any]]] = {}

    def build() -> None:
        for obj in (*inventory.namespaces.values(), *inventory.objects):
            if isinstance(obj, Mapping):
                key = (str(obj.get("apiVersion", "")), plural(str(obj.get("kind", ""))))
                index.setdefault(key, []).append(obj)

    def find(api_version: str, resource: str, namespace: str, name: str | None) -> list[Mapping[str, Any]]:
        if not index:
            build()
        out = []
        for obj in index.get((api_version, resource), ()):
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            if namespace and str(meta.get("namespace") or "") != namespace:
                continue
            if name is not None and str(meta.get("name") or "") != name:
                continue
            out.append(obj)
        return out

    return find
