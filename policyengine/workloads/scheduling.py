"""DRA claims made for a group of pods rather than for each pod: PodGroup claims (``scheduling.k8s.io``,
KEP-5729) and a Job's ``spec.scheduling.resourceClaims`` (KEP-5547), counted once for the group.

A PodGroup's ``spec.resourceClaims`` entry (``name`` plus ``resourceClaimName`` or
``resourceClaimTemplateName``) makes one ResourceClaim for the whole group (from a template: one per
PodGroup), which the group's pods share when their own ``spec.resourceClaims`` holds an entry with the
same three fields; pods name their group in ``spec.schedulingGroup.podGroupName``. A Workload's
``spec.podGroupTemplates[].resourceClaims`` are copied into each PodGroup made from the template and
make no claim themselves. A Job's ``spec.scheduling.resourceClaims`` become the claims of the one
PodGroup the Job controller makes for the Job.

So the GPUs are charged where the claim is made, once: on the PodGroup (``own_claims``), or on the Job
for its ``spec.scheduling`` claims (and not again on the PodGroup the Job controls); a pod template's
entry that matches its group's claim counts in the pods' ``perPod`` but not in the workload's total
(``group_of``). A pod template naming a PodGroup that is not known cannot tell a group claim from a
per-pod one, and a group object of an API version whose claims field is absent is not read: both are
problems, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.claims import ClaimObjects, cut
from policyengine.workloads.dra import MAX_POD_CLAIMS, PodClaims, Resolver, breakdown
from policyengine.workloads.values import Problems, as_dict, as_list, bounded, clamp, problem, text

GROUP = "scheduling.k8s.io"
POD_GROUP = "PodGroup"
WORKLOAD = "Workload"
# Versions whose shape is known: the claims field may be absent (no claims). v1alpha1 (Kubernetes 1.35)
# had Workload.spec.podGroups and no claims; v1alpha2 (1.36) PodGroup and podGroupTemplates; v1alpha3
# and v1beta1 (1.37) add resourceClaims. Another version is read only where the field is present.
KNOWN_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1beta1")
# Kubernetes' validation limits: claims per PodGroup (and per template, and per Job), templates per
# Workload. Past them an object is invalid; the first ones are read and the rest is a problem.
MAX_GROUP_CLAIMS = 4
MAX_TEMPLATES = 8
_NAMES = ("resourceClaimName", "resourceClaimTemplateName")


def is_group_object(obj: Any) -> bool:
    """A Workload or PodGroup of ``scheduling.k8s.io`` (any version)."""
    if not isinstance(obj, Mapping) or obj.get("kind") not in (POD_GROUP, WORKLOAD):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


def _version(obj: Mapping[str, Any]) -> str:
    return text(obj.get("apiVersion", "")).partition("/")[2]


def _key(entry: Any) -> tuple[str, str, str] | None:
    """What a claim entry must match exactly to be the group's: its name and the claim or template named."""
    e = as_dict(entry)
    name = e.get("name")
    if not isinstance(name, str):
        return None
    return (name, text(e.get(_NAMES[0], "")), text(e.get(_NAMES[1], "")))


def _unread(obj: Mapping[str, Any], path: str, problems: Problems) -> None:
    problem(
        problems,
        path,
        f"{cut(obj.get('apiVersion'), 64)} {obj.get('kind')} is a version whose claims field ({path}) is "
        "absent, so the GPUs its pods share cannot be counted",
    )


@dataclass(frozen=True)
class GroupClaims:
    """The claims of one group: entries to resolve (path of the list, entries) and whether they are read."""

    path: str = ""
    entries: list[Any] = field(default_factory=list)
    readable: bool = True


def pod_group_claims(obj: Mapping[str, Any], problems: Problems, where: str = "") -> GroupClaims:
    """A PodGroup's ``spec.resourceClaims``: a problem (at ``where`` if given) when its version is unknown
    and the field is absent."""
    spec = as_dict(obj.get("spec"))
    if "resourceClaims" not in spec and _version(obj) not in KNOWN_VERSIONS:
        _unread(obj, where or "spec.resourceClaims", problems)
        return GroupClaims(readable=False)
    path = "spec.resourceClaims"
    return GroupClaims(
        path, bounded(spec.get("resourceClaims"), MAX_GROUP_CLAIMS, where or path, "claims", problems)
    )


def _job_scheduling(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    spec = as_dict(obj.get("spec"))
    if obj.get("kind") == "CronJob":
        return "spec.jobTemplate.spec.scheduling", as_dict(
            as_dict(as_dict(spec.get("jobTemplate")).get("spec")).get("scheduling")
        )
    return "spec.scheduling", as_dict(spec.get("scheduling"))


def _controlled_by_job(obj: Mapping[str, Any]) -> bool:
    for ref in as_list(as_dict(obj.get("metadata")).get("ownerReferences"))[:MAX_TEMPLATES]:
        ref = as_dict(ref)
        if ref.get("controller") is True and ref.get("kind") == "Job":
            return text(ref.get("apiVersion", "")).partition("/")[0] == "batch"
    return False


def own_claims(obj: Mapping[str, Any], problems: Problems) -> GroupClaims:
    """The claims this object makes for a group, charged once on it: a PodGroup's (unless a Job controls
    it: the Job's ``spec.scheduling`` claims were charged on the Job), a Job's or CronJob's
    ``spec.scheduling.resourceClaims``. A Workload makes none, but is read for its versions' sake."""
    kind = obj.get("kind")
    if is_group_object(obj):
        if kind == WORKLOAD:
            _workload_readable(obj, problems)
            return GroupClaims()
        if _controlled_by_job(obj):
            return GroupClaims()
        return pod_group_claims(obj, problems)
    if kind in ("Job", "CronJob") and text(obj.get("apiVersion", "")).partition("/")[0] == "batch":
        path, scheduling = _job_scheduling(obj)
        claims_path = f"{path}.resourceClaims"
        return GroupClaims(
            claims_path,
            bounded(scheduling.get("resourceClaims"), MAX_GROUP_CLAIMS, claims_path, "claims", problems),
        )
    return GroupClaims()


def _workload_readable(obj: Mapping[str, Any], problems: Problems) -> None:
    """A Workload of an unknown version is read only when its templates carry ``resourceClaims``."""
    spec = as_dict(obj.get("spec"))
    templates = bounded(
        spec.get("podGroupTemplates"),
        MAX_TEMPLATES,
        "spec.podGroupTemplates",
        "pod group templates",
        problems,
    )
    for i, t in enumerate(templates):
        bounded(
            as_dict(t).get("resourceClaims"),
            MAX_GROUP_CLAIMS,
            f"spec.podGroupTemplates[{i}].resourceClaims",
            "claims",
            problems,
        )
    if _version(obj) in KNOWN_VERSIONS:
        return
    if not templates or not all("resourceClaims" in as_dict(t) for t in templates):
        _unread(obj, "spec.podGroupTemplates[].resourceClaims", problems)


@dataclass
class PodGroupOf:
    """A pod template's group: which of its claim entries are the group's, and where they are charged."""

    charged_on: str = ""  # "PodGroup <name>", or the Job's "spec.scheduling"; "" for no group
    keys: set[tuple[str, str, str]] = field(default_factory=set)


def group_of(
    obj: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    path: str,
    objects: ClaimObjects,
    namespace: str,
    problems: Problems,
    dra: PodClaims,
) -> PodGroupOf:
    """The group a pod template's claims may belong to: the PodGroup it names (looked up among the known
    objects), else the Job's own ``spec.scheduling`` claims. ``dra`` is the template's claims, counted."""
    group_name = as_dict(pod_spec.get("schedulingGroup")).get("podGroupName")
    if isinstance(group_name, str) and group_name:
        name = cut(group_name)
        if not any(dra.by_claim):  # no claim holds GPUs: whose claims they are changes no count
            return PodGroupOf()
        pod_group = objects.get(POD_GROUP, namespace, group_name)
        where = f"{path}.schedulingGroup.podGroupName"
        if pod_group is None:
            problem(
                problems,
                where,
                f"PodGroup {name} is not found in namespace {cut(namespace, 63)} (not among the checked manifests or "
                "the inventory), so which of the pods' claims are the group's (one set for all) and which "
                "each pod's cannot be told",
            )
            return PodGroupOf()
        found: Problems = []
        claims = pod_group_claims(pod_group, found, where)
        for p in found:
            problem(problems, where, f"PodGroup {name}: {p['message']}")
        charged = f"{text(pod_group.get('kind'))} {name}"
        return PodGroupOf(charged, {k for e in claims.entries if (k := _key(e)) is not None})
    if obj.get("kind") in ("Job", "CronJob"):
        own = own_claims(obj, [])  # its problems are the object's, listed once by own_claims' caller
        if own.entries:
            return PodGroupOf(
                own.path.rpartition(".")[0], {k for e in own.entries if (k := _key(e)) is not None}
            )
    return PodGroupOf()


def matches(group: PodGroupOf, entry: Any) -> bool:
    return bool(group.charged_on) and _key(entry) in group.keys


def mark_group_claims(
    obj: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    path: str,
    objects: ClaimObjects,
    namespace: str,
    problems: Problems,
    dra: PodClaims,
) -> PodClaims:
    """Pod claim entries that are their group's (``group_of``): shown as shared and the group's, their
    devices in each pod's count but charged on the group, not in the workload's total. Returns ``dra``."""
    group = group_of(obj, pod_spec, path, objects, namespace, problems, dra)
    if not group.charged_on:
        return dra
    entries = as_list(pod_spec.get("resourceClaims"))[:MAX_POD_CLAIMS]
    for i, (entry, view) in enumerate(zip(entries, dra.views, strict=False)):
        if not matches(group, entry):
            continue
        view["group"], view["shared"] = group.charged_on, True
        if isinstance(view.get("resourceClaimName"), str):
            dra.shared.pop(view["resourceClaimName"], None)
        dra.elsewhere[str(i)] = dra.by_claim[i]
    return dra


def add_group_claims(
    gpus: dict[str, Any], obj: Mapping[str, Any], resolver: Resolver, problems: Problems
) -> dict[str, Any]:
    """The workload's GPUs with the claims it makes for a group (``own_claims``) added once."""
    own = own_claims(obj, problems)
    if not own.entries:
        return gpus
    where = own.path.rpartition(".")[0]
    dra = resolver.pod({"resourceClaims": own.entries}, where, problems)
    for view in dra.views:
        view["shared"] = True  # one claim for the group, whatever it is made from
    by_resource = dict(gpus["byResource"])
    for name, n in dra.per_pod.items():
        by_resource[name] = clamp(by_resource.get(name, 0) + n)
    return {
        **gpus,
        "total": clamp(sum(by_resource.values())),
        "byResource": dict(sorted(by_resource.items())),
        "claims": [*gpus["claims"], *breakdown(where, 1, dra.views)],
    }


__all__ = [
    "GROUP",
    "MAX_GROUP_CLAIMS",
    "POD_GROUP",
    "WORKLOAD",
    "GroupClaims",
    "PodGroupOf",
    "add_group_claims",
    "group_of",
    "is_group_object",
    "mark_group_claims",
    "matches",
    "own_claims",
]
