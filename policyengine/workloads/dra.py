"""GPUs that pods ask for through Dynamic Resource Allocation (``resource.k8s.io`` claims).

A pod names claims in ``spec.resourceClaims``: a ResourceClaimTemplate (one claim made per pod) or a
ResourceClaim (one claim shared by every pod naming it). Both are looked up by name in the workload's
namespace among the claim objects the caller knows (``ClaimObjects``: the checked manifests, the
inventory, or the cluster). Each request of a claim asks for devices of a device class; the config's
``spec.gpu.deviceClasses`` says which classes are GPUs and the resource name they count under (a MIG
request whose selectors pin one profile counts as ``nvidia.com/mig-<profile>``, see ``claims``).

Counting follows the API: ``allocationMode: ExactCount`` (the default) gets ``count`` devices (1 when
unset); ``All`` gets every matching device of a pool, which no manifest bounds, so it is a problem, never
0; ``firstAvailable`` gets one of its alternatives, counted at the largest. Requests are read in both API
shapes: ``requests[].exactly`` (v1, v1beta2) and the fields on the request itself (v1beta1, v1alpha3).
Everything read is bounded by Kubernetes' own limits (requests, alternatives, selectors, expression size).
Where claims are found and which classes are GPUs is ``policyengine.workloads.claims``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.claims import (
    CLAIM,
    MAX_ALTERNATIVES,
    MAX_REQUESTS,
    MIG_RESOURCE,
    TEMPLATE,
    ClaimObjects,
    DeviceClasses,
    claim_spec,
    cut,
)
from policyengine.workloads.selectors import MAX_PARSED, SelectorBudget
from policyengine.workloads.values import Problems, as_dict, bounded, clamp, problem, shown, text

# Kubernetes' validation limits (resource.k8s.io): claims per pod, selectors per request, bytes of one CEL
# selector (requests per claim and alternatives per request are in ``claims``).
MAX_POD_CLAIMS = 32
MAX_SELECTORS = 32
MAX_EXPRESSION = 10 * 1024
# What one workload's view shows of its claims' requests (each pod claim repeats its claim's requests, so
# without a bound a small workload naming a large claim many times would make a large view).
MAX_VIEW_DEVICES = 1024
MAX_CLAIM_PROBLEMS = 16  # problems listed for one claim object; the rest are counted
MAX_VIEW_SELECTOR_TEXT = 256 * 1024
# What the API server's ResourceQuota charges an ``All`` request (<class>.deviceclass.resource.k8s.io/devices):
# the most devices one claim's allocation may hold (resource.k8s.io AllocationResultsMaxSize).
ALL_QUOTA_CHARGE = 32


@dataclass
class _Request:
    """One request as counted: the alternative that gets the most GPU devices (or the first)."""

    name: str
    path: str
    device_class: str = ""
    resource: str = ""
    mode: str = "ExactCount"
    count: int = 0
    selectors: list[str] = field(default_factory=list)
    alternatives: int = 0  # firstAvailable entries; 0 for a plain request
    # Where the request (or the alternative named admin_request) sets adminAccess: true: a privilege,
    # not a count.
    admin_path: str = ""
    admin_request: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "request": self.name,
            "path": self.path,
            "deviceClass": self.device_class,
            "resource": self.resource,
            "gpu": bool(self.resource),
            "allocationMode": self.mode,
            "count": self.count,
            "selectors": self.selectors,
            "firstAvailable": self.alternatives,
            "resourceQuotaCharge": self.quota_charge(),
        }

    def quota_charge(self) -> int:
        """Devices the API server's ResourceQuota charges this request: ``count``, or for ``All`` the
        most one claim may be allocated (for firstAvailable, the alternative counted here)."""
        return ALL_QUOTA_CHARGE if self.mode == "All" else self.count


def _exact(
    req: Mapping[str, Any],
    name: str,
    path: str,
    classes: DeviceClasses,
    problems: Problems,
    budget: SelectorBudget,
) -> _Request:
    """One exact request (v1 ``exactly``, a v1beta1 request, or a firstAvailable alternative)."""
    device_class = cut(req.get("deviceClassName", ""))
    out = _Request(name, path, device_class, classes.resource(device_class))
    mode = req.get("allocationMode", "ExactCount")
    out.mode = cut(mode, 32)
    if req.get("adminAccess") is True:
        out.admin_path, out.admin_request = f"{path}.adminAccess", name
    raw = req.get("count")
    if mode == "ExactCount":
        if raw is None:
            out.count = 1
        elif isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw <= 2**63 - 1:
            out.count = raw
        else:
            problem(problems, f"{path}.count", f"count {shown(raw)} is not a positive integer")
    elif out.resource:
        # All: every matching device in a pool; the manifest does not say how many that is.
        problem(
            problems,
            f"{path}.allocationMode",
            f"allocationMode {shown(mode)} asks for all matching {device_class} devices, a number the "
            f"manifest does not bound (ResourceQuota charges it as {ALL_QUOTA_CHARGE} devices of "
            f"{device_class}.deviceclass.resource.k8s.io/devices); use allocationMode ExactCount with a count",
        )
    for i, sel in enumerate(
        bounded(req.get("selectors"), MAX_SELECTORS, f"{path}.selectors", "selectors", problems)
    ):
        expression = as_dict(as_dict(sel).get("cel")).get("expression")
        if isinstance(expression, str):
            if len(expression) > MAX_EXPRESSION:
                problem(
                    problems,
                    f"{path}.selectors[{i}].cel.expression",
                    f"selector longer than {MAX_EXPRESSION} bytes",
                )
            out.selectors.append(cut(expression, MAX_EXPRESSION))
    out.resource = classes.request_resource(device_class, out.selectors, budget)
    if out.resource == MIG_RESOURCE and out.selectors and budget.exceeded:
        problem(
            problems,
            f"{path}.selectors",
            f"the selectors are past the {MAX_PARSED} characters read for the workload, so the MIG profile "
            "they ask for is not read and a per-profile quota cannot be checked",
        )
    return out


def _request(
    req: Mapping[str, Any], path: str, classes: DeviceClasses, problems: Problems, budget: SelectorBudget
) -> _Request:
    name = cut(req.get("name", ""))
    if isinstance(req.get("exactly"), Mapping):
        return _exact(req["exactly"], name, f"{path}.exactly", classes, problems, budget)
    if "firstAvailable" not in req:
        return _exact(req, name, path, classes, problems, budget)
    subs = bounded(
        req.get("firstAvailable"), MAX_ALTERNATIVES, f"{path}.firstAvailable", "alternatives", problems
    )
    options = [
        _exact(
            as_dict(sub),
            f"{name}/{cut(as_dict(sub).get('name', ''))}",
            f"{path}.firstAvailable[{i}]",
            classes,
            problems,
            budget,
        )
        for i, sub in enumerate(subs)
    ]
    if not options:
        problem(problems, f"{path}.firstAvailable", "firstAvailable lists no alternative")
        return _Request(name, path)
    # The scheduler may take any alternative: quotas must hold for the one with the most GPUs.
    best = max(options, key=lambda r: r.count if r.resource else -1)
    best.alternatives = len(options)
    # Admin access on the request (v1beta1) or on any alternative is asked whichever one is taken.
    admin = [(f"{path}.adminAccess", name)] if req.get("adminAccess") is True else []
    admin += [(o.admin_path, o.admin_request) for o in options if o.admin_path]
    if admin:
        best.admin_path, best.admin_request = admin[0]
    return best


def claim_requests(
    obj: Mapping[str, Any], classes: DeviceClasses, problems: Problems, budget: SelectorBudget | None = None
) -> list[_Request]:
    """The requests of a claim object, counted; problems carry paths inside the claim object. ``budget``
    bounds the selector text parsed for MIG profiles (shared by a workload's claims; one per call if None)."""
    budget = budget if budget is not None else SelectorBudget()
    spec, base = claim_spec(obj)
    legacy = spec.get("resourceClassName")
    if isinstance(legacy, str):
        # resource.k8s.io/v1alpha2 (removed in Kubernetes 1.31): the count lives in driver parameters.
        out = _Request("", base, cut(legacy), classes.resource(legacy))
        if out.resource:
            problem(
                problems,
                f"{base}.resourceClassName",
                f"a {text(obj.get('apiVersion'))} claim of class {out.device_class} leaves the number of "
                "devices to driver parameters (parametersRef) that cannot be read; use resource.k8s.io/v1",
            )
        return [out]
    path = f"{base}.devices.requests"
    requests = bounded(as_dict(spec.get("devices")).get("requests"), MAX_REQUESTS, path, "requests", problems)
    return [_request(as_dict(r), f"{path}[{i}]", classes, problems, budget) for i, r in enumerate(requests)]


@dataclass
class PodClaims:
    """What one pod template's claims add: GPUs per pod by resource, and the shared claims among them."""

    per_pod: dict[str, int] = field(default_factory=dict)  # every claim a pod sees, shared ones included
    shared: dict[str, dict[str, int]] = field(default_factory=dict)  # claim name -> by resource
    views: list[dict[str, Any]] = field(default_factory=list)
    by_claim: list[dict[str, int]] = field(default_factory=list)  # per entry of views, by resource
    # entries whose devices are a group's, charged on the group (workloads.scheduling), by resource
    elsewhere: dict[str, dict[str, int]] = field(default_factory=dict)


class Resolver:
    """Resolves the claims of one workload's pod templates (memoised per claim object)."""

    def __init__(self, claims: ClaimObjects, classes: DeviceClasses, namespace: str) -> None:
        self.claims, self.classes, self.namespace = claims, classes, namespace
        self._memo: dict[tuple[str, str], tuple[list[_Request], Problems] | None] = {}
        self._reported: set[tuple[str, str]] = set()  # claim objects whose own problems were listed
        self._devices_left, self._text_left, self._cut = MAX_VIEW_DEVICES, MAX_VIEW_SELECTOR_TEXT, False
        self.budget = SelectorBudget()  # selector text parsed for this workload (MIG profiles, products)

    def _requests(self, kind: str, name: str) -> tuple[list[_Request], Problems] | None:
        key = (kind, name)
        if key not in self._memo:
            obj = self.claims.get(kind, self.namespace, name)
            if obj is None:
                self._memo[key] = None
            else:
                found: Problems = []
                requests = claim_requests(obj, self.classes, found, self.budget)
                if len(found) > MAX_CLAIM_PROBLEMS:
                    more = len(found) - MAX_CLAIM_PROBLEMS
                    found = [
                        *found[:MAX_CLAIM_PROBLEMS],
                        {"path": "spec", "message": f"and {more} more problems"},
                    ]
                self._memo[key] = (requests, found)
        return self._memo[key]

    def pod(self, spec: Mapping[str, Any], path: str, problems: Problems) -> PodClaims:
        out = PodClaims()
        base = f"{path}.resourceClaims"
        for i, entry in enumerate(
            bounded(spec.get("resourceClaims"), MAX_POD_CLAIMS, base, "claims", problems)
        ):
            out.by_claim.append({})
            out.views.append(self._claim(as_dict(entry), f"{base}[{i}]", out, problems))
        return out

    def _claim(
        self, entry: Mapping[str, Any], path: str, out: PodClaims, problems: Problems
    ) -> dict[str, Any]:
        view: dict[str, Any] = {"name": cut(entry.get("name", "")), "path": path}
        kind, name = "", ""
        # Kubernetes before 1.31 nested the two names under ``source``; such pods still run on old clusters.
        source = as_dict(entry.get("source"))
        for key, k in (("resourceClaimTemplateName", TEMPLATE), ("resourceClaimName", CLAIM)):
            given = entry.get(key, source.get(key))
            if isinstance(given, str):
                kind, name = k, cut(given)
                view[key] = name
        view.update(
            {
                "source": f"{kind} {name}" if kind else "",
                "shared": kind == CLAIM,
                "group": "",
                "devices": [],
                "gpus": 0,
            }
        )
        if not kind:
            return view  # neither name set: the API server rejects the pod; nothing to count
        resolved = self._requests(kind, name)
        if resolved is None:
            problem(
                problems,
                path,
                f"{kind} {name} is not found in namespace {cut(self.namespace, 63)} (not among the checked manifests "
                "or the inventory), so the GPUs it asks for cannot be counted",
            )
            return view
        requests, found = resolved
        if (kind, name) not in self._reported:  # once per workload, however many pods name it
            self._reported.add((kind, name))
            for p in found:
                problem(problems, path, f"{kind} {name} {p['path']}: {p['message']}")
        by_resource: dict[str, int] = {}
        for r in requests:
            if r.resource and r.count:
                by_resource[r.resource] = clamp(by_resource.get(r.resource, 0) + r.count)
        view["devices"] = self._device_views(requests, path, problems)
        view["gpus"] = clamp(sum(by_resource.values()))
        view["resourceQuotaCharge"] = clamp(sum(r.quota_charge() for r in requests if r.resource))
        out.by_claim[-1] = by_resource
        for res, n in by_resource.items():
            out.per_pod[res] = clamp(out.per_pod.get(res, 0) + n)
        if kind == CLAIM:
            out.shared[name] = by_resource
        return view

    def _device_views(self, requests: list[_Request], path: str, problems: Problems) -> list[dict[str, Any]]:
        """The requests as the view shows them, within the workload's budget of devices and selector
        text. Counting never depends on the budget; a request or selector left out is a problem, since a
        rule reading selectors (the GPU product) must not pass on what it was not shown."""
        out: list[dict[str, Any]] = []
        for r in requests:
            if self._devices_left <= 0:
                self._over(path, problems)
                break
            self._devices_left -= 1
            view = r.view()
            kept: list[str] = []
            for expression in r.selectors:
                if len(expression) > self._text_left:
                    self._over(path, problems)
                    break
                self._text_left -= len(expression)
                kept.append(expression)
            view["selectors"] = kept
            out.append(view)
        return out

    def _over(self, path: str, problems: Problems) -> None:
        if not self._cut:
            self._cut = True
            problem(
                problems,
                path,
                f"the pods' claims list more than the view keeps ({MAX_VIEW_DEVICES} requests, "
                f"{MAX_VIEW_SELECTOR_TEXT} characters of selectors); the rest is not shown to policies",
            )


def breakdown(template_path: str, replicas: int, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per claim that holds GPUs: where, which object, class and count per pod, and the GPUs it adds."""
    out = []
    for c in claims:
        if not c["gpus"] or c.get("group"):  # a group's claim is charged on the group
            continue
        classes = sorted({d["deviceClass"] for d in c["devices"] if d["gpu"] and d["count"]})
        pods = 1 if c["shared"] else replicas
        out.append(
            {
                "template": template_path,
                "claim": c["name"],
                "source": c["source"],
                "deviceClasses": classes,
                "count": c["gpus"],
                "pods": pods,
                "total": clamp(c["gpus"] * pods),
                "shared": c["shared"],
            }
        )
    return out


__all__ = ["MAX_POD_CLAIMS", "PodClaims", "Resolver", "breakdown", "claim_requests"]
