"""GPUs that pods ask for through Dynamic Resource Allocation (``resource.k8s.io`` claims).

A pod names claims in ``spec.resourceClaims``: a ResourceClaimTemplate (one claim made per pod) or a
ResourceClaim (one claim shared by every pod naming it). Both are looked up by name in the workload's
namespace among the claim objects the caller knows (``ClaimObjects``: the checked manifests, the
inventory, or the cluster). Each request of a claim asks for devices of a device class; the config's
``spec.gpu.deviceClasses`` says which classes are GPUs and the resource name they count under.

Counting follows the API: ``allocationMode: ExactCount`` (the default) gets ``count`` devices (1 when
unset); ``All`` gets every matching device of a pool, which no manifest bounds, so it is a problem, never
0; ``firstAvailable`` gets one of its alternatives, counted at the largest. Requests are read in both API
shapes: ``requests[].exactly`` (v1, v1beta2) and the fields on the request itself (v1beta1, v1alpha3).
Everything read is bounded by Kubernetes' own limits (requests, alternatives, selectors, expression size).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policyengine.workloads.values import Problems, as_dict, as_list, clamp, problem, shown, text

GROUP = "resource.k8s.io"
CLAIM = "ResourceClaim"
TEMPLATE = "ResourceClaimTemplate"
# Which device classes are GPUs, and the name the view counts each under. A whole NVIDIA or AMD GPU is
# the same device its device plugin serves as nvidia.com/gpu or amd.com/gpu, so both ways of asking add
# up under one name (a GPU passed whole to a VM through VFIO too); a MIG slice is not a whole GPU and
# keeps a name of its own.
DEFAULT_DEVICE_CLASSES: Mapping[str, str] = {
    "gpu.nvidia.com": "nvidia.com/gpu",
    "vfio.gpu.nvidia.com": "nvidia.com/gpu",
    "mig.nvidia.com": "mig.nvidia.com",
    "gpu.amd.com": "amd.com/gpu",
    "gpu.intel.com": "gpu.intel.com",
}
# Kubernetes' validation limits (resource.k8s.io): claims per pod, requests per claim, firstAvailable
# alternatives, selectors per request, bytes of one CEL selector; and a DNS subdomain name.
MAX_POD_CLAIMS = 32
MAX_REQUESTS = 32
MAX_ALTERNATIVES = 8
MAX_SELECTORS = 32
MAX_EXPRESSION = 10 * 1024
MAX_NAME = 253
# Claim objects kept in one index: far more than any namespace holds; the rest are not found.
MAX_CLAIM_OBJECTS = 100_000


def cut(value: Any, limit: int = MAX_NAME) -> str:
    """A string for the view, no longer than ``limit`` characters (a longer one is marked as cut)."""
    s = text(value)
    return s if len(s) <= limit else f"{s[:limit]}… ({len(s)} characters)"


@dataclass(frozen=True)
class DeviceClasses:
    """GPU device classes and the resource name each counts under (``spec.gpu.deviceClasses``)."""

    resources: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DEVICE_CLASSES))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DeviceClasses:
        cfg = as_dict(config)
        if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
            cfg = cfg["spec"]
        given = as_dict(cfg.get("gpu")).get("deviceClasses")
        if not isinstance(given, Mapping):
            return cls()
        return cls({k: v for k, v in given.items() if isinstance(k, str) and isinstance(v, str) and v})

    def resource(self, device_class: str) -> str:
        """The resource name of a GPU class; "" for a class that is not a GPU."""
        return self.resources.get(device_class, "")


class ClaimObjects:
    """ResourceClaims and ResourceClaimTemplates by (kind, namespace, name); later objects win."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        for obj in objects:
            if is_claim_object(obj):
                meta = as_dict(obj.get("metadata"))
                key = (obj["kind"], text(meta.get("namespace") or "default"), text(meta.get("name")))
                if key in self._by_key or len(self._by_key) < MAX_CLAIM_OBJECTS:
                    self._by_key[key] = obj

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._by_key.get((kind, namespace, name))

    def claims(self) -> Iterable[tuple[tuple[str, str, str], Mapping[str, Any]]]:
        return self._by_key.items()


NO_CLAIMS = ClaimObjects()


def is_claim_object(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or obj.get("kind") not in (CLAIM, TEMPLATE):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] == GROUP


def claim_spec(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The claim spec of a ResourceClaim (``spec``) or of the claims a template makes (``spec.spec``)."""
    spec = as_dict(obj.get("spec"))
    if obj.get("kind") == TEMPLATE:
        return as_dict(spec.get("spec")), "spec.spec"
    return spec, "spec"


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
        }


def _bounded(items: Any, limit: int, path: str, what: str, problems: Problems) -> list[Any]:
    listed = as_list(items)
    if len(listed) > limit:
        problem(
            problems,
            path,
            f"{len(listed)} {what}, more than Kubernetes allows ({limit}); read the first {limit}",
        )
    return list(listed[:limit])


def _exact(
    req: Mapping[str, Any], name: str, path: str, classes: DeviceClasses, problems: Problems
) -> _Request:
    """One exact request (v1 ``exactly``, a v1beta1 request, or a firstAvailable alternative)."""
    device_class = cut(req.get("deviceClassName", ""))
    out = _Request(name, path, device_class, classes.resource(device_class))
    mode = req.get("allocationMode", "ExactCount")
    out.mode = cut(mode, 32)
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
            "manifest does not bound; use allocationMode ExactCount with a count",
        )
    for i, sel in enumerate(
        _bounded(req.get("selectors"), MAX_SELECTORS, f"{path}.selectors", "selectors", problems)
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
    return out


def _request(req: Mapping[str, Any], path: str, classes: DeviceClasses, problems: Problems) -> _Request:
    name = cut(req.get("name", ""))
    if isinstance(req.get("exactly"), Mapping):
        return _exact(req["exactly"], name, f"{path}.exactly", classes, problems)
    if "firstAvailable" not in req:
        return _exact(req, name, path, classes, problems)
    subs = _bounded(
        req.get("firstAvailable"), MAX_ALTERNATIVES, f"{path}.firstAvailable", "alternatives", problems
    )
    options = [
        _exact(
            as_dict(sub),
            f"{name}/{cut(as_dict(sub).get('name', ''))}",
            f"{path}.firstAvailable[{i}]",
            classes,
            problems,
        )
        for i, sub in enumerate(subs)
    ]
    if not options:
        problem(problems, f"{path}.firstAvailable", "firstAvailable lists no alternative")
        return _Request(name, path)
    # The scheduler may take any alternative: quotas must hold for the one with the most GPUs.
    best = max(options, key=lambda r: r.count if r.resource else -1)
    best.alternatives = len(options)
    return best


def claim_requests(obj: Mapping[str, Any], classes: DeviceClasses, problems: Problems) -> list[_Request]:
    """The requests of a claim object, counted; problems carry paths inside the claim object."""
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
    requests = _bounded(
        as_dict(spec.get("devices")).get("requests"), MAX_REQUESTS, path, "requests", problems
    )
    return [_request(as_dict(r), f"{path}[{i}]", classes, problems) for i, r in enumerate(requests)]


def allocated_gpus(claim: Mapping[str, Any], classes: DeviceClasses) -> dict[str, int]:
    """GPU devices an allocated ResourceClaim holds, by resource: each ``status.allocation.devices.results``
    entry names its request (``<request>`` or ``<request>/<alternative>``), whose class says if it is a GPU."""
    spec, _ = claim_spec(claim)
    by_request: dict[str, str] = {}
    for r in as_list(as_dict(spec.get("devices")).get("requests"))[:MAX_REQUESTS]:
        r = as_dict(r)
        name = text(r.get("name", ""))
        by_request[name] = text(as_dict(r.get("exactly") or r).get("deviceClassName", ""))
        for sub in as_list(r.get("firstAvailable"))[:MAX_ALTERNATIVES]:
            by_request[f"{name}/{text(as_dict(sub).get('name', ''))}"] = text(
                as_dict(sub).get("deviceClassName", "")
            )
    out: dict[str, int] = {}
    results = as_list(
        as_dict(as_dict(as_dict(claim.get("status")).get("allocation")).get("devices")).get("results")
    )
    for result in results:
        resource = classes.resource(by_request.get(text(as_dict(result).get("request", "")), ""))
        if resource:
            out[resource] = out.get(resource, 0) + 1
    return out


@dataclass
class PodClaims:
    """What one pod template's claims add: GPUs per pod by resource, and the shared claims among them."""

    per_pod: dict[str, int] = field(default_factory=dict)  # every claim a pod sees, shared ones included
    shared: dict[str, dict[str, int]] = field(default_factory=dict)  # claim name -> by resource
    views: list[dict[str, Any]] = field(default_factory=list)


class Resolver:
    """Resolves the claims of one workload's pod templates (memoised per claim object)."""

    def __init__(self, claims: ClaimObjects, classes: DeviceClasses, namespace: str) -> None:
        self.claims, self.classes, self.namespace = claims, classes, namespace
        self._memo: dict[tuple[str, str], tuple[list[_Request], Problems] | None] = {}

    def _requests(self, kind: str, name: str) -> tuple[list[_Request], Problems] | None:
        key = (kind, name)
        if key not in self._memo:
            obj = self.claims.get(kind, self.namespace, name)
            if obj is None:
                self._memo[key] = None
            else:
                found: Problems = []
                self._memo[key] = (claim_requests(obj, self.classes, found), found)
        return self._memo[key]

    def pod(self, spec: Mapping[str, Any], path: str, problems: Problems) -> PodClaims:
        out = PodClaims()
        base = f"{path}.resourceClaims"
        for i, entry in enumerate(
            _bounded(spec.get("resourceClaims"), MAX_POD_CLAIMS, base, "claims", problems)
        ):
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
            {"source": f"{kind} {name}" if kind else "", "shared": kind == CLAIM, "devices": [], "gpus": 0}
        )
        if not kind:
            return view  # neither name set: the API server rejects the pod; nothing to count
        resolved = self._requests(kind, name)
        if resolved is None:
            problem(
                problems,
                path,
                f"{kind} {name} is not found in namespace {self.namespace} (not among the checked manifests "
                "or the inventory), so the GPUs it asks for cannot be counted",
            )
            return view
        requests, found = resolved
        for p in found:
            problem(problems, path, f"{kind} {name} {p['path']}: {p['message']}")
        by_resource: dict[str, int] = {}
        for r in requests:
            if r.resource and r.count:
                by_resource[r.resource] = clamp(by_resource.get(r.resource, 0) + r.count)
        view["devices"] = [r.view() for r in requests]
        view["gpus"] = clamp(sum(by_resource.values()))
        for res, n in by_resource.items():
            out.per_pod[res] = clamp(out.per_pod.get(res, 0) + n)
        if kind == CLAIM:
            out.shared[name] = by_resource
        return view


def breakdown(template_path: str, replicas: int, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per claim that holds GPUs: where, which object, class and count per pod, and the GPUs it adds."""
    out = []
    for c in claims:
        if not c["gpus"]:
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


__all__ = [
    "CLAIM",
    "DEFAULT_DEVICE_CLASSES",
    "NO_CLAIMS",
    "TEMPLATE",
    "ClaimObjects",
    "DeviceClasses",
    "PodClaims",
    "Resolver",
    "allocated_gpus",
    "breakdown",
    "claim_requests",
    "is_claim_object",
]
