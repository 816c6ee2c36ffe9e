"""What one pod template asks for: GPUs per container and per pod, and the node labels it is pinned to.

GPU counting follows the Kubernetes effective-request rule, so a GPU-hungry init container that runs
before the app containers is not added to them: per resource, a pod needs the larger of (a) the app
containers plus sidecars summed and (b) each ordinary init container plus the sidecars started before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.workloads.accelerators import (
    ALWAYS_COUNTED,
    DEFAULT_ACCELERATORS,
    GPU_PRODUCT_LABEL,
    MIG_PREFIX,
    PRODUCT_LABELS,
)
from policyengine.workloads.kinds import ContainerSite, PodTemplate
from policyengine.workloads.values import Problems, as_dict, as_list, clamp, gpu_quantity, path_key, text

REGION_LABEL = "topology.kubernetes.io/region"


@dataclass(frozen=True)
class GpuRules:
    """Which extended resources count as accelerators: `spec.gpu.resources` of the config when it gives
    one (it replaces the default list), else the default list; nvidia.com/gpu, amd.com/gpu and MIG slices
    (nvidia.com/mig-*) always."""

    names: frozenset[str] = frozenset(DEFAULT_ACCELERATORS)
    configured: bool = False  # the config's list is in force, not the default one

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> GpuRules:
        cfg = as_dict(config)
        # Accept the whole GovernanceConfig document or its spec: callers hold either.
        if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
            cfg = cfg["spec"]
        given = as_dict(cfg.get("gpu")).get("resources")
        if not isinstance(given, list):
            return cls()
        names = frozenset(r for r in given if isinstance(r, str)) | frozenset(ALWAYS_COUNTED)
        return cls(names, configured=True)

    def is_gpu(self, resource: str) -> bool:
        return resource in self.names or resource.startswith(MIG_PREFIX)


def container_gpus(
    container: Mapping[str, Any], resources_path: str, rules: GpuRules, problems: Problems
) -> dict[str, Any]:
    """``{"requests": {res: n}, "limits": {res: n}, "byResource": {res: n}, "count": n}`` where a
    resource's count is the larger of its request and limit (Kubernetes requires them equal for extended
    resources; the larger is the safe figure when a manifest gets that wrong)."""
    resources = as_dict(container.get("resources"))
    requests = _gpu_side(resources.get("requests"), resources_path, "requests", rules, problems)
    limits = _gpu_side(resources.get("limits"), resources_path, "limits", rules, problems)
    if not requests:  # the usual case (extended resources are given as limits): no merge to do
        by_resource = {n: max(0, v) for n, v in limits.items()}
    else:
        names = sorted(set(requests) | set(limits))
        by_resource = {n: max(requests.get(n, 0), limits.get(n, 0)) for n in names}
    return {
        "requests": requests,
        "limits": limits,
        "byResource": by_resource,
        "count": clamp(sum(by_resource.values())),
    }


def _gpu_side(
    part: Any, resources_path: str, key: str, rules: GpuRules, problems: Problems
) -> dict[str, int]:
    """The GPU resources of one side (``requests`` or ``limits``) by name, in name order. Only string
    names are read: a YAML manifest may also have int keys, which str cannot order."""
    entries = as_dict(part)
    if not entries:
        return {}
    gpus, mig = rules.names, MIG_PREFIX
    names = sorted(n for n in entries if isinstance(n, str) and (n in gpus or n.startswith(mig)))
    return {n: gpu_quantity(entries[n], f"{resources_path}.{key}[{path_key(n)}]", problems) for n in names}


def pod_gpus(containers: Iterable[tuple[ContainerSite, dict[str, int]]]) -> dict[str, int]:
    """Effective GPUs per pod by resource, from (site, byResource) pairs in pod order."""
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    app: dict[str, int] = {}
    for site, by_resource in containers:
        sidecar = site.init and site.container.get("restartPolicy") == "Always"
        for name, n in by_resource.items():
            if not site.init:
                app[name] = app.get(name, 0) + n
            elif sidecar:
                sidecars[name] = sidecars.get(name, 0) + n
            else:
                init_peak[name] = max(init_peak.get(name, 0), n + sidecars.get(name, 0))
    names = set(app) | set(sidecars) | set(init_peak)
    return {
        n: clamp(max(app.get(n, 0) + sidecars.get(n, 0), init_peak.get(n, 0)))
        for n in sorted(names)
        if max(app.get(n, 0) + sidecars.get(n, 0), init_peak.get(n, 0)) > 0
    }


# Where a template's placement is read from: the pod spec path, its nodeSelector and node affinity.
Placement = tuple[str, dict[str, Any], Any]


def placement(template: PodTemplate) -> Placement:
    """The pod spec path, nodeSelector and node affinity in force, after any patches (later ones win):
    read once per template, for the region and every product label."""
    path = template.path
    selector = {k: v for k, v in as_dict(template.spec.get("nodeSelector")).items()}
    affinity = as_dict(template.spec.get("affinity")).get("nodeAffinity")
    for patch_path, spec in template.extra_placement:
        if isinstance(spec.get("nodeSelector"), Mapping):
            selector.update(spec["nodeSelector"])
            path = patch_path
        node_affinity = as_dict(spec.get("affinity")).get("nodeAffinity")
        if node_affinity is not None:
            affinity = node_affinity
            path = patch_path
    return path, selector, affinity


def label_constraint(template: PodTemplate, label: str, placed: Placement | None = None) -> dict[str, Any]:
    """Where the pods may run with respect to one node label.

    ``{"pinned": bool, "allowed": [...], "excluded": [...], "path": str}``. A nodeSelector entry pins to
    one value. Required node affinity terms are OR-ed: the template is pinned by affinity only when every
    term has an ``In`` on the label; ``allowed`` is then the union of each term's ``In`` values less its
    ``NotIn`` values. When not pinned, ``excluded`` lists values that no term allows (``NotIn`` in every
    unpinned term); ``allowed`` is empty. Preferred affinity does not bind and is ignored.
    """
    path, selector, node_affinity = placement(template) if placed is None else placed
    ns_value = selector.get(label)
    if ns_value is None and node_affinity is None:  # the usual template: nothing to read
        return {"pinned": False, "allowed": [], "excluded": [], "path": path}
    ns_set = {text(ns_value)} if ns_value is not None else None
    required = as_dict(as_dict(node_affinity).get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = [as_dict(t) for t in as_list(required.get("nodeSelectorTerms"))]
    pinned_sets: list[set[str]] = []
    unpinned_excl: list[set[str]] = []
    for term in terms:
        allowed: set[str] | None = None
        excl: set[str] = set()
        for expr in as_list(term.get("matchExpressions")):
            expr = as_dict(expr)
            if expr.get("key") != label:
                continue
            values = {text(v) for v in as_list(expr.get("values"))}
            if expr.get("operator") == "In":
                allowed = values if allowed is None else allowed & values
            elif expr.get("operator") == "NotIn":
                excl |= values
        if allowed is None:
            unpinned_excl.append(excl)
        else:
            pinned_sets.append(allowed - excl)
    aff_set: set[str] | None = None
    excluded: set[str] = set()
    if terms and not unpinned_excl:
        aff_set = set().union(*pinned_sets)
    elif unpinned_excl:
        excluded = set.intersection(*unpinned_excl) - set().union(*pinned_sets)
    constraints = [s for s in (ns_set, aff_set) if s is not None]
    if not constraints:
        return {"pinned": False, "allowed": [], "excluded": sorted(excluded), "path": path}
    allowed_all = set.intersection(*constraints)
    return {"pinned": True, "allowed": sorted(allowed_all - excluded), "excluded": [], "path": path}


def product_constraint(template: PodTemplate, placed: Placement | None = None) -> dict[str, Any]:
    """The template's product selection over every product label.

    Same shape as ``label_constraint`` plus ``byLabel`` (each pinned label's own constraint). ``pinned``
    when any product label pins; ``allowed`` is the union of the pinned labels' values (what messages
    name); ``path`` is the first pinned label's. Unpinned: ``excluded`` joins every label's exclusions.
    """
    placed = placement(template) if placed is None else placed
    path, selector, node_affinity = placed
    if node_affinity is None and all(selector.get(label) is None for label in PRODUCT_LABELS):
        return {"pinned": False, "allowed": [], "excluded": [], "path": path, "byLabel": {}}  # no label read
    by_label = {label: label_constraint(template, label, placed) for label in PRODUCT_LABELS}
    pinned = {label: c for label, c in by_label.items() if c["pinned"]}
    if not pinned:
        excluded = sorted({v for c in by_label.values() for v in c["excluded"]})
        first = by_label[GPU_PRODUCT_LABEL]
        return {"pinned": False, "allowed": [], "excluded": excluded, "path": first["path"], "byLabel": {}}
    allowed = sorted({v for c in pinned.values() for v in c["allowed"]})
    path = next(iter(pinned.values()))["path"]
    return {"pinned": True, "allowed": allowed, "excluded": [], "path": path, "byLabel": pinned}
