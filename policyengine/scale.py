"""Scale requests judged as the UPDATE of the workload they scale.

``kubectl scale`` and autoscalers change replicas through the ``scale`` subresource: the API server sends
an UPDATE whose object is an ``autoscaling/v1`` Scale (no pod template), so the policies on the workload
would not see it. Here such a request becomes the UPDATE of its parent: ``oldObject`` is the parent as it
is (fetched through the ``ParentLookup`` port the caller gives), ``object`` the parent with its replicas
set to the Scale's ``spec.replicas``. The decision is answered for the original request. What cannot be
judged this way (no lookup, parent gone, a kind whose replicas field is not known, a malformed Scale) is
an error result for every policy the parent's UPDATE would meet, so failurePolicy decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from policyengine.match import gvk_of
from policyengine.model import Decision, GroupVersionKind, Request, Result

SUBRESOURCE = "scale"
MAX_REPLICAS = 2**31 - 1  # Scale.spec.replicas is an int32
# (group, resource) -> (the kind, the path of its replicas): the kinds whose scale subresource maps
# Scale.spec.replicas onto spec.replicas (the apps kinds by definition, LeaderWorkerSet by its CRD's
# specReplicasPath ``.spec.replicas``).
REPLICAS_AT: Mapping[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("apps", "deployments"): ("Deployment", ("spec", "replicas")),
    ("apps", "statefulsets"): ("StatefulSet", ("spec", "replicas")),
    ("apps", "replicasets"): ("ReplicaSet", ("spec", "replicas")),
    ("", "replicationcontrollers"): ("ReplicationController", ("spec", "replicas")),
    ("leaderworkerset.x-k8s.io", "leaderworkersets"): ("LeaderWorkerSet", ("spec", "replicas")),
}


class ParentUnavailable(Exception):
    """The parent of a scale request could not be read (no API access, a failed or slow GET)."""


class ParentLookup(Protocol):
    """The port: the object at ``resource`` (group, version, plural) ``namespace/name``, as plain JSON;
    None when it does not exist. Raises ParentUnavailable when it cannot be read."""

    def get(self, group: str, version: str, resource: str, namespace: str, name: str) -> Any: ...


class ScaleError(Exception):
    """The scale request cannot be judged as its parent's UPDATE; the message says why."""


Evaluate = Callable[[Request], Decision]
Unevaluated = Callable[[Request, str], Decision]


def is_scale(request: Request) -> bool:
    return request.sub_resource == SUBRESOURCE and request.operation == "UPDATE"


def stand_in(request: Request, parent: Any = None) -> Request:
    """The parent's UPDATE as far as it is known without the Scale: the parent's kind and resource,
    without a subresource (so the policies on the workload match it)."""
    res = request.resource
    known = REPLICAS_AT.get((res.group, res.resource))
    if isinstance(parent, dict) and gvk_of(parent).kind:
        kind = gvk_of(parent)
    elif known is not None:
        kind = GroupVersionKind(res.group, res.version, known[0])
    else:
        kind = request.kind
    return replace(request, kind=kind, sub_resource="", object=parent, old_object=parent)


def scaled_replicas(scale: Any) -> int:
    """The Scale's ``spec.replicas``: an integer in 0..2^31-1 (a JSON bool, string or float is not)."""
    spec = scale.get("spec") if isinstance(scale, dict) else None
    if not isinstance(spec, dict) or "replicas" not in spec:
        raise ScaleError("the Scale has no spec.replicas")
    replicas = spec["replicas"]
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ScaleError(f"the Scale's spec.replicas is a {type(replicas).__name__}, not an integer")
    if not 0 <= replicas <= MAX_REPLICAS:
        raise ScaleError(f"the Scale's spec.replicas {replicas} is outside 0..{MAX_REPLICAS}")
    return replicas


def parent_update(request: Request, parent: Any) -> tuple[Request, int, int | None]:
    """The parent's UPDATE the scale request stands for, with the new and the old replicas."""
    res = request.resource
    known = REPLICAS_AT.get((res.group, res.resource))
    if known is None:
        kind = gvk_of(parent).kind if isinstance(parent, dict) else ""
        raise ScaleError(
            f"the scale subresource of {kind or res.resource} ({res.group or 'core'}/{res.resource}) "
            "is not read: where its replicas are in the object is not known"
        )
    replicas = scaled_replicas(request.object)
    path = known[1]
    old = _get(parent, path)
    scaled = _set(parent, path, replicas)
    update = stand_in(request, parent)
    return replace(update, object=scaled), replicas, old if isinstance(old, int) else None


def judge(
    request: Request,
    parents: ParentLookup | None,
    evaluate: Evaluate,
    unevaluated: Unevaluated,
) -> Decision:
    """The decision on a scale request (``is_scale``): its parent's UPDATE evaluated, answered for it."""
    res = request.resource
    where = f"{res.resource}/{request.name} in namespace {request.namespace or '(none)'}"
    if parents is None:
        why = f"the scale of {where} needs its parent's object, and the webhook has no API access (--kube)"
        return _as_asked(request, unevaluated(stand_in(request), why))
    try:
        parent = parents.get(res.group, res.version, res.resource, request.namespace, request.name)
    except ParentUnavailable as err:
        why = f"the parent of the scale of {where} could not be read: {err}"
        return _as_asked(request, unevaluated(stand_in(request), why))
    if not isinstance(parent, dict):
        why = f"the parent of the scale of {where} is not found"
        return _as_asked(request, unevaluated(stand_in(request), why))
    try:
        update, replicas, old = parent_update(request, parent)
    except ScaleError as err:
        return _as_asked(request, unevaluated(stand_in(request, parent), f"scale of {where}: {err}"))
    via = f"judged as the UPDATE of {update.kind.kind} {request.name} to {replicas} replicas (from {old})"
    return _as_asked(request, evaluate(update), via)


def merged(judged: Decision, own: Decision) -> Decision:
    """The parent's judgement and the results of policies written for the Scale request itself (a
    policy that judged the parent is not asked about the Scale as well)."""
    judges = {r.policy for r in judged.results}
    results = judged.results + tuple(r for r in own.results if r.policy not in judges)
    return replace(
        judged,
        results=results,
        allowed=not any(r.denies for r in results),
        warnings=judged.warnings + own.warnings,
        audit_annotations={**judged.audit_annotations, **own.audit_annotations},
        exceptions_expired=tuple(sorted({*judged.exceptions_expired, *own.exceptions_expired})),
    )


def _as_asked(request: Request, decision: Decision, via: str = "") -> Decision:
    """``decision`` answered (and audited) for the original request; ``via`` prefixes each message."""
    results: tuple[Result, ...] = decision.results
    if via:
        results = tuple(replace(r, message=f"{via}: {r.message}" if r.message else via) for r in results)
    warnings = tuple(f"{w} ({via})" for w in decision.warnings) if via else decision.warnings
    return replace(decision, request=request, results=results, warnings=warnings)


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _set(obj: dict[str, Any], path: tuple[str, ...], value: int) -> dict[str, Any]:
    """A copy of ``obj`` with ``path`` set to ``value`` (only the dicts on the path are copied)."""
    head, *rest = path
    inner = obj.get(head)
    child = _set(inner if isinstance(inner, dict) else {}, tuple(rest), value) if rest else value
    return {**obj, head: child}
