"""Cluster state as the engine sees it: Kubernetes objects in, namespaces and per-team GPU usage out.

``from_documents`` turns ``kubectl get namespaces,pods -A -o yaml`` output (a ``List``, typed lists such as
``PodList`` or multi-document YAML already parsed) into the core's ``Inventory``. ``usage_by_team`` counts
the GPUs that pods still hold: their extended resources (``nvidia.com/gpu``, ...) and the GPU devices
allocated to the DRA ResourceClaims they use (``status.allocation.devices.results``; a claim that several
pods share counts once), and ``inventory_view`` is what CEL sees as ``inventory``::

    {
      "teams": {"ml-research": {"gpusInUse": 12, "pods": 3,
                                "gpusInUseByResource": {"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 4}},
                "default": {"gpusInUse": 0, "pods": 0, "gpusInUseByResource": {}}},
      "namespaces": {"train": {"team": "ml-research", "labels": {...}, "annotations": {...}}}
    }

``gpusInUse`` counts every device once whatever its kind (a MIG slice is one device, like a whole GPU);
``gpusInUseByResource`` splits the same devices by resource name, for per-resource quotas.
Every team named in the config's ``spec.gpu.teams`` and the ``default`` team are always present, so a rule
can read ``inventory.teams[team].gpusInUse`` without guarding it. Which pool a team's usage counts against
(teams without an entry share ``default``'s) is decided in ``policyengine.org``, whose ``org.quota`` view
rules read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from policyengine.model import Inventory
from policyengine.workloads.claims import CLAIM, ClaimObjects, DeviceClasses, allocated_gpus
from policyengine.workloads.extended import (
    NO_EXTENDED,
    ExtendedResources,
    add_extended,
    container_extended,
    extended_resources,
    is_generated_claim,
)
from policyengine.workloads.kinds import find_templates
from policyengine.workloads.pods import GpuRules, container_gpus, pod_gpus
from policyengine.workloads.values import as_dict, as_list

__all__ = [
    "DEFAULT_TEAM",
    "NAME_LABEL",
    "TEAM_LABEL",
    "as_created",
    "from_documents",
    "held_by_pod",
    "inventory_view",
    "pod_gpus_held",
    "pods_held",
    "usage_by_team",
]

TEAM_LABEL = "policyengine.io/team"
# kube-apiserver puts this immutable label on every namespace, so namespace selectors may rely on it.
NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_TEAM = "default"
# Pods in these phases have released their devices; every other phase (Pending, Running, Unknown, none
# yet) may hold or be about to hold them.
_TERMINATED = frozenset({"Succeeded", "Failed"})


def _expand(doc: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return
    kind = doc.get("kind")
    items = doc.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        # Items of typed lists (PodList, NamespaceList) carry no kind of their own.
        item_kind = kind[: -len("List")]
        for item in items:
            if isinstance(item, Mapping) and item_kind and "kind" not in item:
                item = {**item, "kind": item_kind}
            yield from _expand(item)
    else:
        yield doc


def as_created(name: str, namespace: Any) -> Any:
    """The namespace as the API server stores it: labelled ``kubernetes.io/metadata.name: <name>``."""
    if not isinstance(namespace, Mapping):
        return namespace
    meta = as_dict(namespace.get("metadata"))
    labels = as_dict(meta.get("labels"))
    if labels.get(NAME_LABEL) == name:
        return namespace
    return {**namespace, "metadata": {**meta, "labels": {**labels, NAME_LABEL: name}}}


def from_documents(docs: Iterable[Any]) -> Inventory:
    """Namespaces by name; every other object, in order, in ``objects``. Non-objects are skipped."""
    namespaces: dict[str, Any] = {}
    objects: list[Any] = []
    for doc in docs:
        for obj in _expand(doc):
            name = as_dict(obj.get("metadata")).get("name")
            if obj.get("kind") == "Namespace" and isinstance(name, str):
                namespaces[name] = as_created(name, obj)
            else:
                objects.append(obj)
    return Inventory(namespaces=namespaces, objects=tuple(objects))


def team_of(inventory: Inventory, namespace: str) -> str:
    labels = as_dict(as_dict(as_dict(inventory.namespaces.get(namespace)).get("metadata")).get("labels"))
    team = labels.get(TEAM_LABEL)
    return team if isinstance(team, str) and team else DEFAULT_TEAM


def pod_gpus_held(pod: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> int:
    """GPUs a pod holds: the same effective per-pod count as admission uses; 0 once it has terminated.
    Malformed quantities count as 0 here; admission is where they are reported."""
    extended = ExtendedResources(DeviceClasses.from_config(config))  # implicit deviceclass.* names
    return sum(_held_by_resource(pod, GpuRules.from_config(config), extended).values())


def _held_by_resource(
    pod: Mapping[str, Any], rules: GpuRules, extended: ExtendedResources = NO_EXTENDED
) -> dict[str, int]:
    """The devices a pod holds per resource name, DRA extended resources included; {} once it has
    terminated."""
    if as_dict(pod.get("status")).get("phase") in _TERMINATED:
        return {}
    held: dict[str, int] = {}
    for template in find_templates({**pod, "kind": "Pod"}, []):
        counted = [
            (site, _container_held(site.container, site.path, rules, extended))
            for site in template.containers
        ]
        for name, n in pod_gpus(counted).items():
            held[name] = held.get(name, 0) + n
    return held


def _container_held(
    container: Mapping[str, Any], path: str, rules: GpuRules, extended: ExtendedResources
) -> dict[str, int]:
    gpus = container_gpus(container, path, rules, [])
    by_resource: dict[str, int] = add_extended(
        gpus, container_extended(container, path, rules, extended, [])
    )["byResource"]
    return by_resource


def _pods(inventory: Inventory) -> Iterable[Mapping[str, Any]]:
    for obj in inventory.objects:
        if isinstance(obj, Mapping) and obj.get("kind") == "Pod":
            yield obj


def usage_by_team(inventory: Inventory, config: Mapping[str, Any] | None = None) -> dict[str, int]:
    """GPUs held by non-terminated pods, per team (namespace label ``policyengine.io/team``)."""
    return {team: v["gpusInUse"] for team, v in _teams(inventory, config).items()}


def _empty_team() -> dict[str, Any]:
    return {"gpusInUse": 0, "pods": 0, "gpusInUseByResource": {}}


def _teams(inventory: Inventory, config: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    teams: dict[str, dict[str, Any]] = {}
    for namespace, _, held in held_by_pod(inventory, config):
        team = team_of(inventory, namespace)
        entry = teams.setdefault(team, _empty_team())
        entry["gpusInUse"] += sum(held.values())
        entry["pods"] += 1
        by_resource = entry["gpusInUseByResource"]
        for name, n in held.items():
            by_resource[name] = by_resource.get(name, 0) + n
    for entry in teams.values():
        entry["gpusInUseByResource"] = dict(sorted(entry["gpusInUseByResource"].items()))
    return teams


def held_by_pod(
    inventory: Inventory, config: Mapping[str, Any] | None = None
) -> Iterator[tuple[str, Mapping[str, Any], dict[str, int]]]:
    """(namespace, pod, devices held per resource) of each non-terminated pod, as the ``inventory`` view
    counts them (DRA extended resources included; a shared claim once; the scheduler's generated claim
    for extended resources not again)."""
    rules = GpuRules.from_config(config)
    classes = DeviceClasses.from_config(config)
    claims = ClaimObjects(inventory.objects)
    extended = extended_resources(claims, classes)
    counted: set[tuple[str, str]] = set()  # (namespace, claim): a shared claim's devices count once
    for pod in _pods(inventory):
        if as_dict(pod.get("status")).get("phase") in _TERMINATED:
            continue
        held = _held_by_resource(pod, rules, extended)
        namespace = as_dict(pod.get("metadata")).get("namespace")
        namespace = namespace if isinstance(namespace, str) and namespace else "default"
        for name in _claim_names(pod):
            claim = claims.get(CLAIM, namespace, name)
            # The scheduler's claim for DRA extended resources holds what the pod's limits already count.
            if (namespace, name) not in counted and claim and not is_generated_claim(claim):
                counted.add((namespace, name))
                for resource, n in allocated_gpus(claim, classes).items():
                    held[resource] = held.get(resource, 0) + n
        yield namespace, pod, held


def pods_held(
    inventory: Inventory, config: Mapping[str, Any] | None = None
) -> Iterator[tuple[str, Mapping[str, Any], dict[str, int]]]:
    """(namespace, pod, devices held per resource) of each non-terminated pod, as ``usage_by_team``
    counts them: a ResourceClaim that several pods share is held by the first of them only."""
    rules = GpuRules.from_config(config)
    classes = DeviceClasses.from_config(config)
    claims = ClaimObjects(inventory.objects)
    counted: set[tuple[str, str]] = set()
    for pod in _pods(inventory):
        if as_dict(pod.get("status")).get("phase") in _TERMINATED:
            continue
        held = _held_by_resource(pod, rules)
        namespace = as_dict(pod.get("metadata")).get("namespace")
        namespace = namespace if isinstance(namespace, str) and namespace else "default"
        for name in _claim_names(pod):
            if (namespace, name) not in counted and (claim := claims.get(CLAIM, namespace, name)):
                counted.add((namespace, name))
                for resource, n in allocated_gpus(claim, classes).items():
                    held[resource] = held.get(resource, 0) + n
        yield namespace, pod, held


def _claim_names(pod: Mapping[str, Any]) -> Iterable[str]:
    """The ResourceClaims a pod uses: named ones, and those made from its templates, which the pod's
    ``status.resourceClaimStatuses`` names once the claim controller has made them."""
    made = {
        as_dict(s).get("name"): as_dict(s).get("resourceClaimName")
        for s in as_list(as_dict(pod.get("status")).get("resourceClaimStatuses"))
    }
    for entry in as_list(as_dict(pod.get("spec")).get("resourceClaims")):
        entry = as_dict(entry)
        name = entry.get("resourceClaimName", as_dict(entry.get("source")).get("resourceClaimName"))
        if not isinstance(name, str):
            name = made.get(entry.get("name"))
        if isinstance(name, str) and name:
            yield name


def inventory_view(inventory: Inventory, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``inventory`` CEL variable (shape in the module docstring)."""
    cfg = as_dict(config)
    if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
        cfg = cfg["spec"]
    configured = [t for t in as_dict(as_dict(cfg.get("gpu")).get("teams")) if isinstance(t, str)]
    teams = {t: _empty_team() for t in [*configured, DEFAULT_TEAM]}
    teams.update(_teams(inventory, config))
    namespaces = {}
    for name, ns in sorted(inventory.namespaces.items()):
        meta = as_dict(as_dict(ns).get("metadata"))
        namespaces[name] = {
            "team": team_of(inventory, name),
            "labels": dict(as_dict(meta.get("labels"))),
            "annotations": dict(as_dict(meta.get("annotations"))),
        }
    return {"teams": dict(sorted(teams.items())), "namespaces": namespaces}
