"""Which GPU products a pod template may get: its node-label pinning combined with its DRA requests' selectors.

A template's GPUs come from two routes. Device-plugin GPUs (``nvidia.com/gpu`` in limits) are pinned only
by the node label ``nvidia.com/gpu.product`` (nodeSelector or required node affinity). A DRA request's
devices are pinned by the node label too (they are the node's devices) or by its own CEL selectors on the
product attribute (``policyengine.workloads.selectors``). The template is pinned when every GPU it gets is
pinned by either route; what a GPU may be is what both routes allow (the intersection when both pin), and
the template's ``allowed`` is the union over its GPUs. The first DRA request that nothing pins is named
with the expression that could not be read, so the product rule can say why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policyengine.workloads.accelerators import GPU_PRODUCT_LABEL
from policyengine.workloads.selectors import SelectorBudget, selected_products


def gpu_products(
    label: Mapping[str, Any],
    device_plugin_gpus: bool,
    claims: Sequence[Mapping[str, Any]],
    budget: SelectorBudget,
) -> dict[str, Any]:
    """``label`` (the node labels' constraint, ``pods.product_constraint``) extended with the template's
    DRA GPU requests: ``pinned``, ``allowed``, ``excluded``, ``path``, ``byLabel`` as before, plus
    ``request``, ``reason`` and ``unread`` for the first DRA request left unpinned ("" when none is). A
    DRA selector names NVIDIA products, so it is intersected with the ``nvidia.com/gpu.product`` label
    only; a node pinned by another product label (a TPU type, an instance type) still pins the request."""
    label_set = set(label["allowed"]) if label["pinned"] else None
    product_label = label.get("byLabel", {}).get(GPU_PRODUCT_LABEL)
    product_set = set(product_label["allowed"]) if product_label else None
    may_get: list[set[str] | None] = [label_set] if device_plugin_gpus else []
    unpinned = {"request": "", "reason": "", "unread": ""}
    claim_path = ""  # the first claim that pins a product itself
    for claim in claims:
        for device in claim["devices"]:
            if not (device["gpu"] and device["count"]):
                continue
            selection = selected_products(device["selectors"], budget)
            if selection.pinned:
                chosen = set(selection.allowed)
                may_get.append(chosen if product_set is None else chosen & product_set)
                claim_path = claim_path or claim["path"]
            elif label_set is not None:
                may_get.append(label_set)
            else:
                may_get.append(None)
                if not unpinned["request"]:
                    unpinned = {
                        "request": f"{claim['source']} request {device['request']} ({device['path']})",
                        "reason": selection.reason,
                        "unread": selection.unread,
                    }
    if not may_get:  # no GPU at all: the node label alone says where the pods go
        return {**label, **unpinned}
    if any(s is None for s in may_get):
        return {**label, "pinned": False, "allowed": [], **unpinned}
    allowed = set().union(*[s for s in may_get if s is not None])
    # A wrong product is pointed at where it is chosen: the node label if it pins, else the claim.
    path = label["path"] if label_set is not None else claim_path
    by_label = label.get("byLabel", {})
    return {
        "pinned": True,
        "allowed": sorted(allowed),
        "excluded": [],
        "path": path,
        "byLabel": by_label,
        **unpinned,
    }


__all__ = ["gpu_products"]
