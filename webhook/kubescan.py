"""The cluster side of ``policyengine scan --kube``: find through discovery every resource the policy set
matches (custom resources included), list it read-only in pages, and write the OpenReports back.

Discovery reads ``/api/v1`` and the preferred version of every group under ``/apis``, keeping the
resources that can be listed and are not subresources. A resource is read when a policy the scan runs may
match it (its resourceRules or kinds name it, or a wildcard does) and, with ``--kinds``, when it is one of
them; the namespaces and the objects the views read (``cluster.RESOURCES``: pods, DRA claims, runtimes...)
are always read, as the webhook reads them. Lists are paged (``limit``/``continue``) and the whole read
stops at ``max_objects``, so a cluster larger than expected is an error, not an unbounded read.
A resource the API server will not list (403, 404, ...) is left out and named.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

from policyengine.model import Match, Policy
from policyengine.reports import openreports
from webhook.cluster import RESOURCES

PAGE = 500
KEPT_REQUESTS = 10_000
REPORTS_GROUP, REPORTS_VERSION = openreports.API_VERSION.split("/")
_REPORTS = f"/apis/{REPORTS_GROUP}/{REPORTS_VERSION}"


class ScanSourceError(Exception):
    """The cluster cannot be read or written as asked (too many objects, CRDs missing, refused writes)."""


class KubeRest:
    """Plain JSON requests through the official client's ApiClient (its auth, TLS and proxy settings)."""

    def __init__(self, api_client: Any, *, keep: int = KEPT_REQUESTS) -> None:
        self.api_client = api_client
        # "METHOD path": the last requests asked, for the RBAC the docs give (bounded: the webhook's
        # background scan asks again every pass, for as long as it runs)
        self.requests: deque[str] = deque(maxlen=keep)

    def request(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (), body: Any = None
    ) -> tuple[int, Any]:
        self.requests.append(f"{method} {path}")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*serialized[:4])
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None


@dataclass(frozen=True)
class APIResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def path(self) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/{self.plural}"

    @property
    def label(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def discover(rest: KubeRest) -> list[APIResource]:
    """Every listable resource (no subresources) of core v1 and of each group's preferred version."""
    found = _resources(rest, "", "v1", "/api/v1")
    status, groups = rest.request("GET", "/apis")
    if status != 200 or not isinstance(groups, dict):
        raise ScanSourceError(f"discovery: GET /apis answered {status}")
    for group in groups.get("groups") or []:
        if not isinstance(group, dict) or not isinstance(group.get("preferredVersion"), dict):
            continue
        name, version = str(group.get("name", "")), str(group["preferredVersion"].get("version", ""))
        if name and version:
            found += _resources(rest, name, version, f"/apis/{name}/{version}")
    return found


def _resources(rest: KubeRest, group: str, version: str, path: str) -> list[APIResource]:
    status, body = rest.request("GET", path)
    if status != 200 or not isinstance(body, dict):
        return []  # a group whose server is down (an aggregated API) has nothing to scan
    out = []
    for r in body.get("resources") or []:
        if not isinstance(r, dict) or "/" in str(r.get("name", "")) or "list" not in (r.get("verbs") or []):
            continue
        out.append(
            APIResource(group, version, str(r["name"]), str(r.get("kind", "")), bool(r.get("namespaced")))
        )
    return out


def may_match(match: Match, resource: APIResource) -> bool:
    """Whether a policy's match could select objects of this resource (selectors aside)."""
    rules, kinds = match.resource_rules, match.kinds
    hit = not rules and not kinds
    hit = hit or any(
        _among(resource.group, r.api_groups)
        and _among(resource.version, r.api_versions)
        and _among(resource.plural, r.resources)
        for r in rules
    )
    hit = hit or any(_among(resource.group, k.api_groups) and _among(resource.kind, k.kinds) for k in kinds)
    return hit and all(may_match(m, resource) for m in match.also)


def _among(value: str, allowed: Iterable[str]) -> bool:
    return any(a in ("*", value) for a in allowed)


def wanted(
    resources: Sequence[APIResource],
    policies: Sequence[Policy],
    kinds: Sequence[str],
    *,
    with_inventory: bool = True,
) -> list[APIResource]:
    """The resources to read: those a scanned policy may match (narrowed by ``kinds``, names such as
    ``TrainJob``, ``trainjobs`` or ``trainjobs.trainer.kubeflow.org``), plus what the inventory needs.
    Without ``with_inventory`` (the webhook: its informers hold those) the inventory's are left out."""
    chosen = {k.lower() for k in kinds}
    out = []
    for r in resources:
        held = r.plural in RESOURCES and r.kind == RESOURCES[r.plural]
        if held and not with_inventory:
            continue
        named = not chosen or bool(
            {r.kind.lower(), r.plural, r.label, f"{r.kind.lower()}.{r.group}"} & chosen
        )
        matched = named and any(may_match(p.match, r) for p in policies if p.background)
        if matched or held:
            out.append(r)
    return out


@dataclass
class ClusterRead:
    objects: list[dict[str, Any]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # "pods: 403 Forbidden"


def read_cluster(
    rest: KubeRest,
    policies: Sequence[Policy],
    *,
    kinds: Sequence[str] = (),
    max_objects: int,
    with_inventory: bool = True,
) -> ClusterRead:
    """Every object of the resources ``wanted`` names, with apiVersion and kind set on each."""
    read = ClusterRead()
    for resource in wanted(discover(rest), policies, kinds, with_inventory=with_inventory):
        try:
            read.objects += list_all(rest, resource, limit=max_objects - len(read.objects))
        except _Unread as err:
            read.unread.append(f"{resource.label}: {err}")
    return read


class _Unread(Exception):
    pass


def list_all(rest: KubeRest, resource: APIResource, *, limit: int) -> list[dict[str, Any]]:
    """All objects of one resource, a page at a time; ScanSourceError past ``limit`` objects."""
    out: list[dict[str, Any]] = []
    token = ""
    api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
    for _ in range(limit + 2):  # a server handing out empty pages with a continue token cannot loop us
        query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
        status, body = rest.request("GET", resource.path, query=query)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
            reason = body.get("reason") if isinstance(body, dict) else None
            raise _Unread(f"{status} {reason or 'unexpected answer'}")
        for item in body["items"]:
            if isinstance(item, dict):
                out.append({"apiVersion": api_version, "kind": resource.kind, **item})
        if len(out) > limit:
            raise ScanSourceError(
                f"more objects than --max-objects allows (reached at {resource.label}); "
                "narrow the scan with --kinds or raise --max-objects"
            )
        meta = body.get("metadata")
        token = str(meta.get("continue") or "") if isinstance(meta, dict) else ""
        if not token:
            return out
    raise ScanSourceError(f"{resource.label}: the API server kept paging past --max-objects")


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def apply_reports(rest: KubeRest, reports: Sequence[dict[str, Any]]) -> Applied:
    """Create or update each report, then delete the reports this tool wrote for namespaces that have no
    results any more (and the ClusterReport when no cluster-scoped object has one)."""
    applied = Applied()
    for report in reports:
        _put(rest, report, applied)
    kept = {r["metadata"].get("namespace", "") for r in reports}
    for namespace, name in _ours(rest):
        if namespace not in kept:
            _delete(rest, f"{_REPORTS}/namespaces/{quote(namespace)}/reports/{quote(name)}", applied)
    if "" not in kept:
        _delete(rest, f"{_REPORTS}/clusterreports/{openreports.REPORT_NAME}", applied)
    return applied


def _path(report: dict[str, Any]) -> tuple[str, str]:
    """(the collection, the object) paths of a report."""
    namespace = report["metadata"].get("namespace")
    collection = (
        f"{_REPORTS}/namespaces/{quote(namespace)}/reports" if namespace else f"{_REPORTS}/clusterreports"
    )
    return collection, f"{collection}/{quote(report['metadata']['name'])}"


def _put(rest: KubeRest, report: dict[str, Any], applied: Applied) -> None:
    collection, path = _path(report)
    label = path.removeprefix(_REPORTS + "/")
    for _ in range(3):  # a conflict means someone else wrote it in between: read again and retry
        status, current = rest.request("GET", path)
        if status == 404:
            status, body = rest.request("POST", collection, body=report)
            if status in (200, 201):
                applied.created.append(label)
                return
        elif status == 200 and isinstance(current, dict):
            version = (current.get("metadata") or {}).get("resourceVersion", "")
            body_ = {**report, "metadata": {**report["metadata"], "resourceVersion": version}}
            status, body = rest.request("PUT", path, body=body_)
            if status == 200:
                applied.updated.append(label)
                return
        else:
            body = current
        if status not in (409,):
            break
    _refused("write", label, status, body)


def _ours(rest: KubeRest) -> list[tuple[str, str]]:
    """(namespace, name) of every Report this tool wrote, across namespaces."""
    selector = ",".join(f"{k}={v}" for k, v in openreports.MANAGED_BY.items())
    out, token = [], ""
    for _ in range(10_000):
        query = [("labelSelector", selector), ("limit", str(PAGE))] + ([("continue", token)] if token else [])
        status, body = rest.request("GET", f"{_REPORTS}/reports", query=query)
        if status != 200 or not isinstance(body, dict):
            _refused("list", "reports", status, body)
        for item in body.get("items") or []:
            meta = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(meta, dict) and meta.get("name") == openreports.REPORT_NAME:
                out.append((str(meta.get("namespace", "")), str(meta["name"])))
        token = str((body.get("metadata") or {}).get("continue") or "")
        if not token:
            break
    return out


def _delete(rest: KubeRest, path: str, applied: Applied) -> None:
    status, body = rest.request("DELETE", path)
    if status in (200, 202):
        applied.deleted.append(path.removeprefix(_REPORTS + "/"))
    elif status != 404:
        _refused("delete", path.removeprefix(_REPORTS + "/"), status, body)


def _refused(verb: str, what: str, status: int, body: Any) -> NoReturn:
    message = body.get("message") if isinstance(body, dict) else None
    hint = " (are the openreports.io CRDs installed?)" if status == 404 else ""
    raise ScanSourceError(f"cannot {verb} {what}: {status} {message or ''}{hint}".rstrip())
