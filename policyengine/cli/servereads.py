"""``serve``'s options for what a background pass reads from the API server with --kube: which workload
resources (``--background-kinds``) and how many objects at most (``--background-max-objects``)."""

from __future__ import annotations

import argparse
from typing import Any

from policyengine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--background-kinds",
        action="append",
        default=[],
        metavar="RESOURCE[,RESOURCE]",
        help="with --kube, the workloads each background pass reads from the API server, as plural.group "
        "(default: the AI workloads: trainjobs.trainer.kubeflow.org, inferenceservices.serving.kserve.io, "
        "rayclusters.ray.io, jobsets.jobset.x-k8s.io...; deploy/rbac.yaml grants list on those only; "
        "repeatable)",
    )
    p.add_argument(
        "--background-max-objects",
        type=int,
        default=None,
        metavar="N",
        help="with --kube, a background pass reading more objects than this fails and keeps the last "
        "reports (default 100000)",
    )


def check(args: argparse.Namespace) -> None:
    if args.background_max_objects is not None and args.background_max_objects < 1:
        raise UsageError(f"--background-max-objects must be positive, not {args.background_max_objects}")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields the options give (left out when not given: the Settings defaults apply)."""
    out: dict[str, Any] = {}
    kinds = tuple(k.strip() for group in args.background_kinds for k in group.split(",") if k.strip())
    if kinds:
        out["background_kinds"] = kinds
    if args.background_max_objects is not None:
        out["background_max_objects"] = args.background_max_objects
    return out
