"""Which resources a policy matching every kind (``*``) sends to the webhook, and which are governed.

A policy that matches ``*`` can only judge what the workload view reads: pods and the objects that make
them. Sending it every kind would put every Event, Lease and EndpointSlice of the cluster behind the
webhook, so ``*`` stands for ``WORKLOAD_RESOURCES`` (or the ``--kinds`` the user lists instead):
the built-in pod controllers, pods and pod templates, the scheduling groups whose DRA claims the GPU
quotas charge, and the AI workloads (Kubeflow, Trainer, Ray, KServe, JobSet, LeaderWorkerSet, Volcano).
``GOVERNED`` are the AI workload kinds, whose requests fail closed by default (``webhook.configuration``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from policyengine.match import plural
from policyengine.workloads.charge import TEMPLATE_KINDS
from policyengine.workloads.scheduling import GROUP as SCHEDULING_GROUP
from policyengine.workloads.scheduling import POD_GROUP, WORKLOAD
from webhook.bgcluster import DEFAULT_RESOURCES

Resource = tuple[str, str]  # (apiGroup, plural resource); "" is the core group

# Pods and the built-in controllers whose pod template the workload view reads.
POD_CONTROLLERS: tuple[Resource, ...] = (
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
)
# Objects that describe pods another object runs (core PodTemplate, Trainer runtimes): checked too.
TEMPLATES: tuple[Resource, ...] = tuple(sorted((group, plural(kind)) for group, kind in TEMPLATE_KINDS))
# PodGroups and Workloads carry the DRA claims of a group of pods: the GPU quotas charge them there.
SCHEDULING: tuple[Resource, ...] = (
    (SCHEDULING_GROUP, plural(POD_GROUP)),
    (SCHEDULING_GROUP, plural(WORKLOAD)),
)
WORKLOAD_RESOURCES: tuple[Resource, ...] = tuple(
    dict.fromkeys((*POD_CONTROLLERS, *TEMPLATES, *SCHEDULING, *DEFAULT_RESOURCES))
)
# The AI workloads (and the Trainer runtimes they run on): what the packs govern first.
GOVERNED: frozenset[Resource] = frozenset({*DEFAULT_RESOURCES, *(r for r in TEMPLATES if r[0])})
# Kinds created and updated many times a second in a busy cluster that no pack can judge: never sent
# for ``*``, and refused in ``--kinds``.
HIGH_VOLUME: frozenset[Resource] = frozenset(
    {
        ("", "events"),
        ("events.k8s.io", "events"),
        ("coordination.k8s.io", "leases"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "endpoints"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
    }
)

DEFAULT_TOKEN = "default"  # in --kinds: the built-in WORKLOAD_RESOURCES
MAX_KINDS = 256  # --kinds entries; a configuration lists a few dozen
_RESOURCE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_GROUP = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*"
)


class KindsError(ValueError):
    """A ``--kinds`` value that names no resource; the message names the entry."""


def parse_kinds(values: Sequence[str]) -> tuple[Resource, ...]:
    """``--kinds`` values (repeatable, comma-separated): ``RESOURCE.GROUP`` (``rayclusters.ray.io``),
    ``RESOURCE`` for the core group (``pods``), or ``default`` for ``WORKLOAD_RESOURCES``."""
    items = [item.strip() for value in values for item in value.split(",")]
    if len(items) > MAX_KINDS:
        raise KindsError(f"--kinds lists {len(items)} entries; at most {MAX_KINDS}")
    out: list[Resource] = []
    for i, item in enumerate(items, 1):
        if item == DEFAULT_TOKEN:
            out.extend(WORKLOAD_RESOURCES)
            continue
        resource, _, group = item.partition(".")
        if not _RESOURCE.fullmatch(resource) or (group and not _GROUP.fullmatch(group)):
            raise KindsError(
                f"--kinds entry {i} {item[:80]!r} is not RESOURCE.GROUP (a lower-case plural resource and "
                "its API group, e.g. rayclusters.ray.io, pods for the core group) or 'default'"
            )
        if (group, resource) in HIGH_VOLUME:
            raise KindsError(f"--kinds entry {i} {item!r} is a high-volume kind no policy pack judges")
        out.append((group, resource))
    if not out:
        raise KindsError("--kinds names no resource")
    return tuple(dict.fromkeys(out))


def expand(groups: Iterable[str], pattern: str, kinds: Sequence[Resource]) -> list[Resource]:
    """The (group, resource) pairs a rule's ``groups`` x ``pattern`` stands for: a pattern starting
    with ``*`` (``*``, ``*/*``, ``*/scale``) becomes each of ``kinds`` in those groups, with the
    pattern's subresource; any other pattern stays, in each of the groups."""
    wanted = set(groups)
    if not pattern.startswith("*"):
        return [(group, pattern) for group in sorted(wanted)]
    sub = pattern[1:]  # "" or "/<subresource>"
    return [(g, r + sub) for g, r in kinds if "*" in wanted or g in wanted]


def is_governed(groups: Iterable[str], resource: str) -> bool:
    """Whether a rule on ``groups`` x ``resource`` (or one of its subresources) covers a governed kind."""
    wanted, base = set(groups), resource.partition("/")[0]
    return any(r == base and ("*" in wanted or g in wanted) for g, r in GOVERNED)
