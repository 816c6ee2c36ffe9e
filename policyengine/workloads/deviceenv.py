"""Accelerators a container is given by an environment variable instead of its resources.

Some container runtimes hand a container the devices an environment variable of its names, whatever it
asked the scheduler for:
- the NVIDIA container runtime reads ``NVIDIA_VISIBLE_DEVICES`` (``all``, indexes, ``GPU-<uuid>``,
  ``MIG-<uuid>``) unless the node's container toolkit sets
  ``accept-nvidia-visible-devices-envvar-when-unprivileged = false``;
- the Habana (Intel Gaudi) container runtime's hook gives the devices of ``HABANA_VISIBLE_DEVICES`` or
  ``HABANA_VISIBLE_MODULES`` to any container whose OCI spec sets them.
The device plugin overwrites the variable only in a container it allocated devices to. A container that
asks for none of the vendor's devices (as an extended resource or a DRA claim) and sets one would run on
the node's devices outside every quota: that is a problem of the view (``gpu-counts-readable`` denies
it), not a count. A value given by ``valueFrom`` cannot be read here and is a problem too; values that
give no device (``void``, ``none``, the empty string for NVIDIA; the empty string for Habana) are not.
What an image's own ``ENV`` sets is out of an admission request's sight: that half is the node's
setting (docs/gpu-accounting.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from policyengine.workloads.values import Problems, as_dict, problem

if TYPE_CHECKING:
    from policyengine.workloads.kinds import ContainerSite

# Each variable: the resource prefix of the devices a device plugin allocates for it, and the values that
# give no device.
DEVICE_ENV: dict[str, tuple[str, frozenset[str]]] = {
    "NVIDIA_VISIBLE_DEVICES": ("nvidia.com/", frozenset({"", "void", "none"})),
    "HABANA_VISIBLE_DEVICES": ("habana.ai/", frozenset({""})),
    "HABANA_VISIBLE_MODULES": ("habana.ai/", frozenset({""})),
}
DEVICE_NAMES = frozenset(DEVICE_ENV)
_SHOWN = 64  # characters of a value written into the problem


def device_problems(
    devices: Sequence[tuple[ContainerSite, Mapping[str, int]]],
    containers: Sequence[Mapping[str, Any]],
    problems: Problems,
) -> None:
    """A problem for each device variable (found by the references' env walk: its container's site and
    each name's last entry) that gives its container devices it does not ask for; ``containers``: the
    view's containers, whose ``gpus.byResource`` and ``claims`` say what each asks for."""
    if not devices:
        return  # the usual workload: no container sets one, no map of the containers to build
    asked = {c["path"]: c for c in containers}
    for site, named in devices:
        view = asked.get(site.path)
        if view is None or view["claims"]:
            continue  # not a counted container; or a DRA driver gives the devices of its claims
        envs = site.container["env"]
        for name, at in named.items():
            prefix, no_devices = DEVICE_ENV[name]
            if any(resource.startswith(prefix) for resource in view["gpus"]["byResource"]):
                continue  # the device plugin sets the variable to what it allocated
            value = as_dict(envs[at]).get("value")
            if isinstance(value, str) and value.strip().lower() in no_devices:
                continue
            given = f"={value[:_SHOWN]!r}" if isinstance(value, str) else " from valueFrom"
            problem(
                problems,
                f"{site.path}.env[{at}]",
                f"{name}{given} gives the container {prefix.rstrip('/')} devices it does not ask for in "
                "resources (its container runtime honours it), outside every quota; ask for them in "
                "resources.limits, or remove it",
            )
