"""Parameter objects for policies bound through a paramRef (ValidatingAdmissionPolicyBinding semantics)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from policyengine.match import labels_of, selector_matches
from policyengine.model import Inventory, ParamRef


def _meta(obj: Any, key: str) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return str(meta.get(key, "")) if isinstance(meta, dict) else ""


def resolve_params(
    ref: ParamRef, param_objects: Sequence[Any], inventory: Inventory, request_namespace: str
) -> list[Any]:
    """The objects ``ref`` selects among the policy files' objects and the inventory, in a stable order.

    ``ref.namespace`` unset means the request's namespace for namespaced params (cluster-scoped params
    carry no namespace and always match on namespace).
    """
    candidates: Iterable[Any] = (*param_objects, *inventory.objects)
    wanted_ns = ref.namespace if ref.namespace is not None else request_namespace
    found = []
    for obj in candidates:
        if not isinstance(obj, dict) or obj.get("kind") != ref.kind or obj.get("apiVersion") != ref.api_version:
            continue
        ns = _meta(obj, "namespace")
        if ns and ns != wanted_ns:
            continue
        if ref.name is not None and _meta(obj, "name") != ref.name:
            continue
        if ref.selector is not None and not selector_matches(ref.selector, labels_of(obj)):
            continue
        found.append(obj)
    return sorted(found, key=lambda o: (_meta(o, "namespace"), _meta(o, "name")))
