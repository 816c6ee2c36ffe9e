"""What a request adds to its team's GPU usage: ``workload.gpus.charge``.

On CREATE (and in CI, where there is no old object) the whole workload is charged. On UPDATE the old
object's GPUs are already in the team's usage, so only the growth is charged: ``total`` is
``max(0, new total - old total)`` and each resource of the new workload is charged
``max(0, new - old)`` of that resource. A scale-down, or a change that moves GPUs from one resource
to another without adding any, charges nothing to ``total``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.workloads.values import as_dict


def whole_charge(gpus: Mapping[str, Any]) -> dict[str, Any]:
    """The charge of a workload that is not running yet: all its GPUs."""
    return {
        "total": gpus["total"],
        "byResource": dict(gpus["byResource"]),
        "byProduct": dict(gpus["byProduct"]),
    }


def update_charge(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The charge of an UPDATE from ``old`` to ``new`` (both ``workload.gpus`` figures).

    ``byResource`` has the keys of the new workload's ``byResource``, so a policy can index it by the
    resources the workload uses; the old figures are read defensively (a view of anything)."""
    old_by = as_dict(old.get("byResource"))
    by_resource = {
        name: max(0, n - _count(old_by.get(name))) for name, n in as_dict(new["byResource"]).items()
    }
    return {"total": max(0, new["total"] - _count(old.get("total"))), "byResource": by_resource}


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0
