"""What a request adds to its team's GPU usage: ``workload.gpus.charge``.

On CREATE (and in CI, where there is no old object) the whole workload is charged. On UPDATE the old
object's GPUs are already in the team's usage, so only the growth is charged: ``total`` is
``max(0, new total - old total)`` and each resource of the new workload is charged
``max(0, new - old)`` of that resource. A scale-down, or a change that moves GPUs from one resource
to another without adding any, charges nothing to ``total``.

A template (``is_template``: a Trainer runtime, a core PodTemplate) only describes pods that another object
will run, and that object is charged for them: a template's charge is zero on every resource, so quota and
per-workload rules never count it, while its GPU declarations, images and models are still checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.workloads.values import as_dict

# (API group, kind) of objects that only describe pods another object runs.
TEMPLATE_KINDS = frozenset(
    {
        ("trainer.kubeflow.org", "TrainingRuntime"),
        ("trainer.kubeflow.org", "ClusterTrainingRuntime"),
        ("kubeflow.org", "TrainingRuntime"),  # Trainer v2's first API group (v2alpha1)
        ("kubeflow.org", "ClusterTrainingRuntime"),
        ("", "PodTemplate"),
    }
)


def is_template(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` only describes pods (its group and kind, so a running kind cannot borrow the name)."""
    api_version = obj.get("apiVersion")
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    kind = obj.get("kind")
    return isinstance(kind, str) and (group, kind) in TEMPLATE_KINDS  # a hostile kind may be any value


def no_charge(gpus: Mapping[str, Any]) -> dict[str, Any]:
    """The charge of a template: nothing, with the keys of its figures so policies can index them."""
    return {
        "total": 0,
        "byResource": dict.fromkeys(as_dict(gpus.get("byResource")), 0),
        "byProduct": dict.fromkeys(as_dict(gpus.get("byProduct")), 0),
    }


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
