"""Parameter objects for policies bound through a paramRef (ValidatingAdmissionPolicyBinding semantics).

Candidates are the param objects found among the policy files and the inventory's objects. Kubernetes
knows from discovery whether a param kind is namespaced; we decide it without a cluster: a known
cluster-scoped kind is cluster-scoped, any other core (``v1``) kind is namespaced, and a custom kind is
namespaced when one of its objects carries a namespace. An object of a namespaced kind written without a
namespace lives in ``default``, where ``kubectl apply`` would put it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.match import CLUSTER_SCOPED_KINDS, labels_of, selector_matches
from policyengine.model import Inventory, ParamRef

DEFAULT_NAMESPACE = "default"
NOT_FOUND = "no params found for policy binding with `Deny` parameterNotFoundAction"
NO_PARAM_REF = "the policy has a paramKind but the binding has no paramRef"
CLUSTER_SCOPED_REQUEST = (
    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
)


@dataclass(frozen=True)
class ParamLookup:
    """What a binding's paramRef found: the param objects (the policy runs once per object), or a
    configuration error that the policy's failurePolicy decides on (Kubernetes: "failed to configure
    binding"). No objects and no error means the binding is skipped (parameterNotFoundAction Allow)."""

    objects: tuple[Any, ...] = ()
    error: str | None = None


def _meta(obj: Any, key: str) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return str(meta.get(key, "") or "") if isinstance(meta, dict) else ""


def _of_kind(ref: ParamRef, objects: Sequence[Any]) -> list[Any]:
    return [
        o
        for o in objects
        if isinstance(o, dict) and o.get("kind") == ref.kind and o.get("apiVersion") == ref.api_version
    ]


def is_namespaced(ref: ParamRef, candidates: Sequence[Any]) -> bool:
    """Whether the param kind is namespace-scoped (see the module docstring for how we decide)."""
    if ref.kind in CLUSTER_SCOPED_KINDS:
        return False
    if "/" not in ref.api_version:  # the core group: everything else there is namespaced
        return True
    return any(_meta(o, "namespace") for o in candidates)


def lookup(
    ref: ParamRef, param_objects: Sequence[Any], inventory: Inventory, request_namespace: str
) -> ParamLookup:
    """The objects ``ref`` selects for a request in ``request_namespace`` ("" when cluster-scoped)."""
    if ref.name is None and ref.selector is None:
        return ParamLookup(error=NO_PARAM_REF)
    candidates = _of_kind(ref, (*param_objects, *inventory.objects))
    namespaced = is_namespaced(ref, candidates)
    wanted_ns = ""
    if namespaced:
        if ref.namespace:
            wanted_ns = ref.namespace
        elif request_namespace:
            wanted_ns = request_namespace
        else:
            return ParamLookup(error=CLUSTER_SCOPED_REQUEST)
    # One object per name: the inventory (the cluster's current state, later here) wins over a policy
    # file's copy.
    found: dict[tuple[str, str], Any] = {}
    for obj in candidates:
        ns = (_meta(obj, "namespace") or DEFAULT_NAMESPACE) if namespaced else ""
        if ns != wanted_ns:
            continue
        if ref.name is not None and _meta(obj, "name") != ref.name:
            continue
        if ref.selector is not None and not selector_matches(ref.selector, labels_of(obj)):
            continue
        found[(ns, _meta(obj, "name"))] = obj
    objects = tuple(found[k] for k in sorted(found))
    if not objects and ref.not_found_action != "Allow":
        return ParamLookup(error=NOT_FOUND)
    return ParamLookup(objects=objects)
