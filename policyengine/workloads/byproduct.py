"""GPUs per product: what a workload may take of each GPU model, for per-product team budgets.

A template's GPUs are of the products its ``gpuProducts`` allows (node labels, DRA selectors). A GPU that
may be several products counts against each of them, since the scheduler may put it on any. A GPU no
product pins is listed in ``unpinned`` with the products its node affinity excludes (``NotIn``); once the
team is known (``expand``) it counts against every product the team budgets that it is not excluded from.
Per template the workload's GPUs are its own per-pod GPUs times its pods, plus each shared ResourceClaim
once (the first template naming it carries it), as the workload's ``total`` counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policyengine.workloads.dra import PodClaims
from policyengine.workloads.kinds import PodTemplate
from policyengine.workloads.values import as_dict, as_list, clamp

__all__ = ["budget_products", "charge_products", "expand", "product_gpus", "update_by_product"]

# A team budgets at most this many products (the schema's bound, kept here for configs not validated).
MAX_BUDGET_PRODUCTS = 64


def product_gpus(
    templates: Sequence[PodTemplate], views: Sequence[Mapping[str, Any]], pod_claims: Sequence[PodClaims]
) -> dict[str, Any]:
    """``{"byProduct": {product: GPUs}, "unpinned": [{"template", "gpus", "excluded"}]}`` of a workload."""
    by_product: dict[str, int] = {}
    unpinned: list[dict[str, Any]] = []
    seen_shared: set[str] = set()
    for t, v, dra in zip(templates, views, pod_claims, strict=True):
        gpus = _template_total(t.replicas, v["gpus"]["perPod"], dra, seen_shared)
        if gpus <= 0:
            continue
        products = v["gpuProducts"]
        if products["pinned"]:
            for product in products["allowed"]:
                by_product[product] = clamp(by_product.get(product, 0) + gpus)
        else:
            unpinned.append({"template": t.path, "gpus": gpus, "excluded": list(products["excluded"])})
    return {"byProduct": dict(sorted(by_product.items())), "unpinned": unpinned}


def _template_total(replicas: int, per_pod: int, dra: PodClaims, seen_shared: set[str]) -> int:
    shared = sum(sum(by.values()) for by in dra.shared.values())
    total = max(0, per_pod - shared) * replicas
    for name, by_resource in dra.shared.items():
        if name not in seen_shared:
            seen_shared.add(name)
            total += sum(by_resource.values())
    return clamp(total)


def budget_products(limits: Mapping[str, Any]) -> list[str]:
    """The products a team's ``quotaByProduct`` names (string keys, at most MAX_BUDGET_PRODUCTS)."""
    names = [p for p in as_dict(limits.get("quotaByProduct")) if isinstance(p, str)]
    return sorted(names)[:MAX_BUDGET_PRODUCTS]


def expand(
    by_product: Mapping[str, int], unpinned: Iterable[Mapping[str, Any]], budgeted: Sequence[str]
) -> dict[str, int]:
    """Per product, the pinned GPUs plus, for each budgeted product, the unpinned GPUs not excluded from
    it: every product the GPUs could land on is charged. Every budgeted product is a key (0 when none)."""
    out = {p: 0 for p in budgeted}
    out.update({p: n for p, n in by_product.items() if isinstance(p, str) and type(n) is int})
    for entry in unpinned:
        entry = as_dict(entry)
        gpus = entry.get("gpus")
        if type(gpus) is not int or gpus <= 0:
            continue
        excluded = set(as_list(entry.get("excluded")))
        for product in budgeted:
            if product not in excluded:
                out[product] = clamp(out[product] + gpus)
    return dict(sorted(out.items()))


def update_by_product(new: Mapping[str, int], old: Mapping[str, int]) -> dict[str, int]:
    """What an UPDATE adds per product: new minus old, never below 0 (keys: the new figures')."""
    return {p: max(0, n - _count(old.get(p))) for p, n in new.items()}


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def charge_products(gpus: dict[str, Any], before: Mapping[str, Any] | None, budgeted: Sequence[str]) -> None:
    """Set ``gpus.byProduct`` to what the workload may take of each product, the team's budgeted ones
    included, and ``gpus.charge.byProduct`` to what the request adds: all of it, or on UPDATE (``before``
    the old ``workload.gpus``) new minus old per product, the old figures expanded the same way."""
    gpus["byProduct"] = expand(gpus["byProduct"], gpus["unpinned"], budgeted)
    if before is None:
        gpus["charge"]["byProduct"] = dict(gpus["byProduct"])
        return
    old = expand(as_dict(before.get("byProduct")), as_list(before.get("unpinned")), budgeted)
    gpus["charge"]["byProduct"] = update_by_product(gpus["byProduct"], old)
