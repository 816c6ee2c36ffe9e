"""GPUs a container is given by an environment variable instead of its resources.

The NVIDIA container runtime hands a container the GPUs its ``NVIDIA_VISIBLE_DEVICES`` names (``all``,
indexes, ``GPU-<uuid>``, ``MIG-<uuid>``) unless the node's container toolkit sets
``accept-nvidia-visible-devices-envvar-when-unprivileged = false``; the device plugin overwrites the
variable only in a container it allocated GPUs to. A container that asks for no NVIDIA GPU (as an
extended resource or a DRA claim) and sets it would run on every GPU of its node outside every quota:
that is a problem of the view (``gpu-counts-readable`` denies it), not a count. A value given by
``valueFrom`` cannot be read here and is a problem too; ``void``, ``none`` and the empty string give
no GPU. What an image's own ``ENV`` sets is out of an admission request's sight: that half is the
node's setting (README, GPU quotas).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.workloads.values import Problems, as_dict, problem

DEVICE_ENV = "NVIDIA_VISIBLE_DEVICES"
NVIDIA_PREFIX = "nvidia.com/"
_NO_GPUS = frozenset({"", "void", "none"})
_SHOWN = 64  # characters of a value written into the problem


def device_env(
    container: Mapping[str, Any], path: str, by_resource: Mapping[str, int], problems: Problems
) -> None:
    """A problem when ``container`` (at ``path``, counting ``by_resource``) is given GPUs by its env."""
    envs = container.get("env")
    if type(envs) is not list or not envs:
        return
    if any(name.startswith(NVIDIA_PREFIX) for name in by_resource):
        return  # the device plugin sets the variable to what it allocated
    if _has_claims(container):
        return  # a DRA driver gives the devices of its claims
    at = -1
    for i, entry in enumerate(envs):  # the last entry of a name wins, as in Kubernetes
        if (entry if type(entry) is dict else as_dict(entry)).get("name") == DEVICE_ENV:
            at = i
    if at < 0:
        return
    entry = as_dict(envs[at])
    value = entry.get("value")
    if isinstance(value, str) and value.strip().lower() in _NO_GPUS:
        return
    given = f"={value[:_SHOWN]!r}" if isinstance(value, str) else " from valueFrom"
    problem(
        problems,
        f"{path}.env[{at}]",
        f"{DEVICE_ENV}{given} gives the container GPUs it does not ask for in resources (the NVIDIA "
        "container runtime honours it), outside every quota; ask for them in resources.limits, or set "
        "it to void",
    )


def _has_claims(container: Mapping[str, Any]) -> bool:
    """Whether the container names DRA claims in ``resources.claims``."""
    claims = as_dict(container.get("resources")).get("claims")
    return isinstance(claims, list) and bool(claims)
