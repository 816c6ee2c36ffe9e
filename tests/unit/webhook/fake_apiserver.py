"""A small fake Kubernetes API server for namespaces, pods, DRA claims, volumes and the other watched
resources: list and watch with resourceVersion.

It keeps an event history; ``compact()`` forgets it, so a watch from an older resourceVersion gets a
``410 Gone`` ERROR event (what etcd compaction does); ``drop_watches()`` cuts every open watch mid-stream
without the final chunk (a dropped connection); ``end_watches()`` ends them cleanly. Workloads
(``put_workload``) are served to GET by name, as the webhook reads the parent of a scale request.
ConfigMaps are served to GET, create (POST) and replace (PUT) as the API server does: a name that is not
a DNS-1123 subdomain or data over 1 MiB is 422 Invalid, a create of an existing name 409 AlreadyExists,
a replace whose metadata.resourceVersion is not the current one 409 Conflict; ``conflicts`` answers the
next N replaces with 409 Conflict anyway, ``race_create`` stores an object just before a create is
answered (another replica won the race), ``configmap_failure`` answers every ConfigMap request with it.
Discovery (``/api/v1``, ``/apis``, ``/apis/{group}/{version}``) lists the resources served; ``serve_kind``
adds a CRD-backed kind (TrainJob, InferenceService, ...) whose objects (``put_object``) are listed in pages
of ``limit`` with a ``continue`` token, and ``serve_openreports`` the openreports.io Reports and
ClusterReports, served to list (with a labelSelector), GET, create, replace and DELETE; ``written`` keeps
every report body created or replaced; ``endless_pages`` makes every custom list page empty with a
``continue`` token (a hostile server), ``forbidden`` answers their lists 403 and
``custom_conflicts`` the next N replaces 409 Conflict.

Leases (coordination.k8s.io/v1) are served by ``fake_leases.FakeLeases``, at ``leases``.
Runs under uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.unit.webhook.fake_leases import FakeLeases

KINDS = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "resourceclaims": "ResourceClaim",
    "resourceclaimtemplates": "ResourceClaimTemplate",
    "deviceclasses": "DeviceClass",
    "resourceslices": "ResourceSlice",
    "podgroups": "PodGroup",
    "clusterqueues": "ClusterQueue",
    "localqueues": "LocalQueue",
    "resourceflavors": "ResourceFlavor",
    "storageclasses": "StorageClass",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "persistentvolumes": "PersistentVolume",
    "datasets": "Dataset",
    "trainingruntimes": "TrainingRuntime",
    "clustertrainingruntimes": "ClusterTrainingRuntime",
    "configmaps": "ConfigMap",
}
CORE = {"namespaces", "pods", "persistentvolumeclaims", "persistentvolumes", "configmaps"}
CLUSTER_SCOPED = {"namespaces", "persistentvolumes", "deviceclasses", "resourceslices", "storageclasses"}
CLUSTER_SCOPED |= {"clusterqueues", "resourceflavors", "clustertrainingruntimes"}
DRA = {"resourceclaims", "resourceclaimtemplates", "deviceclasses", "resourceslices"}
SCHEDULING = {"podgroups"}  # scheduling.k8s.io
KUEUE = {"clusterqueues", "localqueues", "resourceflavors"}
STORAGE = {"storageclasses"}  # storage.k8s.io, served at v1
FLUID = {"datasets"}  # data.fluid.io
TRAINER = {"trainingruntimes", "clustertrainingruntimes"}  # trainer.kubeflow.org


CustomKey = tuple[str, str, str]  # (group, version, plural)


class Dropped(Exception):
    """Raised inside a watch stream to cut the connection."""


class FakeAPIServer:
    def __init__(
        self,
        dra_versions: tuple[str, ...] = ("v1",),
        kueue_versions: tuple[str, ...] = (),
        scheduling_versions: tuple[str, ...] = ("v1beta1",),
        fluid_versions: tuple[str, ...] = ("v1alpha1",),
        trainer_versions: tuple[str, ...] = ("v1alpha1",),
    ) -> None:
        self.dra_versions = dra_versions  # resource.k8s.io versions served; the first is the storage one
        self.kueue_versions = kueue_versions  # kueue.x-k8s.io versions served (none: Kueue not installed)
        self.scheduling_versions = scheduling_versions  # scheduling.k8s.io, likewise
        self.fluid_versions = fluid_versions  # data.fluid.io, likewise
        self.trainer_versions = trainer_versions  # trainer.kubeflow.org, likewise
        self.rv = 100
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in KINDS}
        self.history: dict[str, list[tuple[int, str, dict[str, Any]]]] = {r: [] for r in KINDS}
        self.oldest = {r: 0 for r in KINDS}  # resourceVersions at or below this are compacted away
        self.lists = {r: 0 for r in KINDS}
        self.watches = {r: 0 for r in KINDS}
        self._drop_epoch = 0
        self._end_epoch = 0
        self._lock = threading.Lock()
        # (group, version, plural, namespace, name) -> object, served to GET only; the GETs seen
        self.workloads: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self.gets: list[str] = []
        # ConfigMaps: (namespace, name) -> object, listed and watched like the others (``put``) and served
        # to GET, POST and PUT; the requests seen ("GET name", "PUT name", ...)
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = self.objects["configmaps"]
        self.pages = {r: 0 for r in KINDS}  # list pages served (a list with ?limit= is paged)
        self.configmap_requests: list[str] = []
        self.conflicts = 0  # answer the next N replaces with 409 Conflict
        self.conflicts_sent = 0
        self.race_create: dict[str, Any] | None = None  # stored just before the next create is answered
        self.configmap_failure: int | None = None  # an HTTP status every ConfigMap request gets
        # CRD-backed kinds: (group, version, plural) -> (kind, namespaced); their objects by (namespace, name)
        self.custom_kinds: dict[CustomKey, tuple[str, bool]] = {}
        self.custom: dict[CustomKey, dict[tuple[str, str], dict[str, Any]]] = {}
        self.custom_lists: list[str] = []  # "plural limit=N continue=T" per list request
        self.written: list[dict[str, Any]] = []  # report bodies created or replaced, as sent
        self.endless_pages = False  # hostile: every custom list page is empty and says there is more
        self.forbidden: set[str] = set()  # custom plurals whose list is answered 403 Forbidden
        self.custom_conflicts = 0  # answer the next N custom replaces with 409 Conflict

        self.leases = FakeLeases()  # coordination.k8s.io/v1 Leases (fake_leases.py)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- state, from the test's thread -------------------------------------------------------------

    def put(self, resource: str, name: str, namespace: str = "", **fields: Any) -> dict[str, Any]:
        with self._lock:
            self.rv += 1
            key = (namespace, name)
            kind = KINDS[resource]
            existed = key in self.objects[resource]
            meta: dict[str, Any] = {
                "name": name,
                "resourceVersion": str(self.rv),
                "uid": f"{resource}-{name}",
            }
            if namespace:
                meta["namespace"] = namespace
            meta.update(fields.pop("metadata", {}))
            api_version = f"resource.k8s.io/{self.dra_versions[0]}" if resource in DRA else "v1"
            if resource in KUEUE:
                api_version = f"kueue.x-k8s.io/{self.kueue_versions[0]}"
            if resource in SCHEDULING:
                api_version = f"scheduling.k8s.io/{self.scheduling_versions[0]}"
            if resource in STORAGE:
                api_version = "storage.k8s.io/v1"
            if resource in FLUID:
                api_version = f"data.fluid.io/{self.fluid_versions[0]}"
            if resource in TRAINER:
                api_version = f"trainer.kubeflow.org/{self.trainer_versions[0]}"
            obj = {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}
            self.objects[resource][key] = obj
            self.history[resource].append((self.rv, "MODIFIED" if existed else "ADDED", obj))
            return obj

    def put_workload(self, plural: str, obj: dict[str, Any]) -> None:
        group, _, version = str(obj["apiVersion"]).rpartition("/")
        meta = obj["metadata"]
        with self._lock:
            self.workloads[(group, version, plural, meta["namespace"], meta["name"])] = obj

    def delete_workload(self, plural: str, obj: dict[str, Any]) -> None:
        group, _, version = str(obj["apiVersion"]).rpartition("/")
        meta = obj["metadata"]
        with self._lock:
            self.workloads.pop((group, version, plural, meta["namespace"], meta["name"]), None)

    def serve_kind(self, group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> None:
        """Serve a custom resource (as if its CRD were installed)."""
        with self._lock:
            self.custom_kinds[(group, version, plural)] = (kind, namespaced)
            self.custom.setdefault((group, version, plural), {})

    def serve_openreports(self) -> None:
        self.serve_kind("openreports.io", "v1alpha1", "reports", "Report")
        self.serve_kind("openreports.io", "v1alpha1", "clusterreports", "ClusterReport", namespaced=False)

    def put_object(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object of a kind ``serve_kind`` serves, with a uid and resourceVersion."""
        group, _, version = str(obj["apiVersion"]).rpartition("/")
        meta = obj["metadata"]
        with self._lock:
            self.rv += 1
            stored = {
                **obj,
                "metadata": {"uid": f"{plural}-{meta['name']}", **meta, "resourceVersion": str(self.rv)},
            }
            self.custom[(group, version, plural)][(meta.get("namespace", ""), meta["name"])] = stored
            return stored

    def delete_object(self, plural: str, obj: dict[str, Any]) -> None:
        group, _, version = str(obj["apiVersion"]).rpartition("/")
        meta = obj["metadata"]
        with self._lock:
            self.custom[(group, version, plural)].pop((meta.get("namespace", ""), meta["name"]), None)

    def objects_of(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.custom[(group, version, plural)].values())

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        with self._lock:
            self.rv += 1
            obj = self.objects[resource].pop((namespace, name))
            gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
            self.history[resource].append((self.rv, "DELETED", gone))

    def compact(self) -> None:
        """Forget the history, as if other writes had happened since and etcd compacted them away."""
        with self._lock:
            self.rv += 10
            for r in KINDS:
                self.history[r].clear()
                self.oldest[r] = self.rv

    def drop_watches(self) -> None:
        with self._lock:
            self._drop_epoch += 1

    def end_watches(self) -> None:
        """End every open watch cleanly, as the server's watch timeout does."""
        with self._lock:
            self._end_epoch += 1

    # -- HTTP ----------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            resource = request.path_params["resource"]
            version = request.path_params.get("version")
            group = request.path_params.get("group")
            served = {
                "resource.k8s.io": (DRA, self.dra_versions),
                "kueue.x-k8s.io": (KUEUE, self.kueue_versions),
                "scheduling.k8s.io": (SCHEDULING, self.scheduling_versions),
                "storage.k8s.io": (STORAGE, ("v1",)),
                "data.fluid.io": (FLUID, self.fluid_versions),
                "trainer.kubeflow.org": (TRAINER, self.trainer_versions),
            }
            if (str(group), str(version), resource) in self.custom_kinds:
                return await self._custom_collection(request, (str(group), str(version), resource), "")
            resources, versions = served.get(str(group), (set(), ()))
            if resource not in KINDS or (version is not None) != (resource in resources):
                return JSONResponse({"kind": "Status", "code": 404}, status_code=404)
            if version is not None and version not in versions:
                return JSONResponse({"kind": "Status", "code": 404}, status_code=404)
            if request.query_params.get("watch") in ("true", "1"):
                return self._watch(resource, request)
            return self._list(resource, request)

        async def get_one(request: Request) -> Response:
            p = request.path_params
            custom = (p.get("group", ""), p["version"], p["resource"])
            if custom in self.custom_kinds:
                return await self._custom_item(request, custom, p.get("namespace", ""), p["name"])
            key = (p.get("group", ""), p["version"], p["resource"], p["namespace"], p["name"])
            with self._lock:
                self.gets.append(request.url.path)
                obj = self.workloads.get(key)
            if obj is None:
                return JSONResponse({"kind": "Status", "code": 404, "reason": "NotFound"}, status_code=404)
            return JSONResponse(obj)

        return Starlette(
            routes=[
                *self.leases.routes(),
                Route(
                    "/api/v1/namespaces/{namespace}/configmaps/{name}",
                    self._configmap,
                    methods=["GET", "PUT"],
                ),
                Route("/api/v1/namespaces/{namespace}/configmaps", self._configmap, methods=["POST"]),
                Route("/api/v1", self._discover_core),
                Route("/apis", self._discover_groups),
                Route("/apis/{group}/{version}", self._discover_group),
                Route("/api/{version}/namespaces/{namespace}/{resource}/{name}", get_one),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}",
                    get_one,
                    methods=["GET", "PUT", "DELETE"],
                ),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{resource}",
                    self._custom_namespaced,
                    methods=["GET", "POST"],
                ),
                Route("/api/v1/{resource}", handle),
                Route("/apis/{group}/{version}/{resource}", handle, methods=["GET", "POST"]),
                Route(
                    "/apis/{group}/{version}/{resource}/{name}",
                    self._cluster_item,
                    methods=["GET", "PUT", "DELETE"],
                ),
            ]
        )

    # -- discovery and custom resources --------------------------------------------------------------

    def _groups(self) -> dict[str, tuple[str, ...]]:
        out = {
            "resource.k8s.io": self.dra_versions,
            "kueue.x-k8s.io": self.kueue_versions,
            "scheduling.k8s.io": self.scheduling_versions,
            "storage.k8s.io": ("v1",),
            "data.fluid.io": self.fluid_versions,
            "trainer.kubeflow.org": self.trainer_versions,
        }
        for group, version, _ in self.custom_kinds:
            if version not in out.get(group, ()):
                out[group] = (*out.get(group, ()), version)
        return {g: v for g, v in out.items() if v}

    async def _discover_core(self, request: Request) -> Response:
        resources = [_api_resource(r, KINDS[r], r not in CLUSTER_SCOPED) for r in sorted(CORE)]
        resources.append({"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get"]})
        return JSONResponse({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})

    async def _discover_groups(self, request: Request) -> Response:
        groups = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in self._groups().items()
        ]
        return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _discover_group(self, request: Request) -> Response:
        group, version = request.path_params["group"], request.path_params["version"]
        if version not in self._groups().get(group, ()):
            return _status(404, "NotFound", "the server could not find the requested resource")
        builtin = {
            "resource.k8s.io": DRA,
            "kueue.x-k8s.io": KUEUE,
            "scheduling.k8s.io": SCHEDULING,
            "storage.k8s.io": STORAGE,
            "data.fluid.io": FLUID,
            "trainer.kubeflow.org": TRAINER,
        }.get(group, set())
        resources = [_api_resource(r, KINDS[r], r not in CLUSTER_SCOPED) for r in sorted(builtin)]
        resources += [
            _api_resource(plural, kind, namespaced)
            for (g, v, plural), (kind, namespaced) in self.custom_kinds.items()
            if (g, v) == (group, version)
        ]
        body = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}", "resources": resources}
        return JSONResponse(body)

    async def _custom_namespaced(self, request: Request) -> Response:
        p = request.path_params
        key = (p["group"], p["version"], p["resource"])
        if key not in self.custom_kinds:
            return _status(404, "NotFound", "the server could not find the requested resource")
        return await self._custom_collection(request, key, p["namespace"])

    async def _cluster_item(self, request: Request) -> Response:
        p = request.path_params
        key = (p["group"], p["version"], p["resource"])
        if key not in self.custom_kinds:
            return _status(404, "NotFound", "the server could not find the requested resource")
        return await self._custom_item(request, key, "", p["name"])

    async def _custom_collection(self, request: Request, key: CustomKey, namespace: str) -> Response:
        kind, _ = self.custom_kinds[key]
        if request.method == "POST":
            body = json.loads(await request.body())
            name = str(body["metadata"]["name"])
            with self._lock:
                if (namespace, name) in self.custom[key]:
                    return _status(409, "AlreadyExists", f'{key[2]} "{name}" already exists')
                self.written.append(body)
                return JSONResponse(self._store_custom(key, namespace, body), status_code=201)
        query = request.query_params
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        selector = dict(part.split("=", 1) for part in (query.get("labelSelector") or "").split(",") if part)
        with self._lock:
            self.custom_lists.append(f"{key[2]} limit={limit} continue={start}")
            if key[2] in self.forbidden:
                return _status(403, "Forbidden", f"cannot list resource {key[2]!r}")
            if self.endless_pages:
                return JSONResponse(
                    {"kind": kind + "List", "metadata": {"continue": str(start + 1)}, "items": []}
                )
            items = [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                for (ns, _), o in sorted(self.custom[key].items())
                if (not namespace or ns == namespace)
                and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            ]
            end = start + limit if limit else len(items)
            meta = {"resourceVersion": str(self.rv), **({"continue": str(end)} if end < len(items) else {})}
        body = {
            "kind": kind + "List",
            "apiVersion": f"{key[0]}/{key[1]}",
            "metadata": meta,
            "items": items[start:end],
        }
        return JSONResponse(body)

    async def _custom_item(self, request: Request, key: CustomKey, namespace: str, name: str) -> Response:
        with self._lock:
            current = self.custom[key].get((namespace, name))
            if current is None:
                return _status(404, "NotFound", f'{key[2]} "{name}" not found')
            if request.method == "GET":
                return JSONResponse(current)
            if request.method == "DELETE":
                del self.custom[key][(namespace, name)]
                return JSONResponse({"kind": "Status", "status": "Success"})
        body = json.loads(await request.body())
        with self._lock:
            given = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if self.custom_conflicts > 0 or given != current["metadata"]["resourceVersion"]:
                self.custom_conflicts = max(0, self.custom_conflicts - 1)
                return _status(409, "Conflict", f'the object has been modified; "{name}"')
            self.written.append(body)
            return JSONResponse(self._store_custom(key, namespace, body, uid=current["metadata"]["uid"]))

    def _store_custom(
        self, key: CustomKey, namespace: str, body: dict[str, Any], uid: str = ""
    ) -> dict[str, Any]:
        self.rv += 1
        name = str(body["metadata"]["name"])
        meta = {
            **body["metadata"],
            "name": name,
            "resourceVersion": str(self.rv),
            "uid": uid or f"{key[2]}-{name}",
        }
        if namespace:
            meta["namespace"] = namespace
        obj = {**body, "metadata": meta}
        self.custom[key][(namespace, name)] = obj
        return obj

    def _list(self, resource: str, request: Request) -> Response:
        """One page: ``limit`` objects from the offset a ``continue`` token names (all when no limit)."""
        limit = int(request.query_params.get("limit") or 0)
        start = int(request.query_params.get("continue") or 0)
        with self._lock:
            self.lists[resource] += not start
            self.pages[resource] += 1
            keys = sorted(self.objects[resource])
            end = start + limit if limit else len(keys)
            items = [
                {k: v for k, v in self.objects[resource][key].items() if k not in ("kind", "apiVersion")}
                for key in keys[start:end]
            ]
            meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
            if end < len(keys):
                meta["continue"] = str(end)
        return JSONResponse(
            {"kind": KINDS[resource] + "List", "apiVersion": "v1", "metadata": meta, "items": items}
        )

    async def _configmap(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        body = json.loads(await request.body()) if request.method in ("POST", "PUT") else {}
        name = request.path_params.get("name") or str((body.get("metadata") or {}).get("name") or "")
        with self._lock:
            self.configmap_requests.append(f"{request.method} {name}")
            if self.configmap_failure is not None:
                return _status(self.configmap_failure, "InternalError", "the fake API server fails")
            key = (namespace, name)
            current = self.configmaps.get(key)
            if request.method == "GET":
                if current is None:
                    return _status(404, "NotFound", f'configmaps "{name}" not found')
                return JSONResponse(current)
            invalid = _invalid_configmap(name, body)
            if invalid:
                return _status(422, "Invalid", f'ConfigMap "{name}" is invalid: {invalid}')
            if request.method == "POST":
                if self.race_create is not None:
                    raced, self.race_create = self.race_create, None
                    self._store_configmap(key, raced)
                    current = self.configmaps[key]
                if current is not None:
                    return _status(409, "AlreadyExists", f'configmaps "{name}" already exists')
                return JSONResponse(self._store_configmap(key, body), status_code=201)
            if current is None:
                return _status(404, "NotFound", f'configmaps "{name}" not found')
            given = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if self.conflicts > 0 or (given and given != current["metadata"]["resourceVersion"]):
                if self.conflicts > 0:
                    self.conflicts -= 1
                self.conflicts_sent += 1
                return _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            return JSONResponse(self._store_configmap(key, body, uid=current["metadata"]["uid"]))

    def _store_configmap(self, key: tuple[str, str], body: dict[str, Any], uid: str = "") -> dict[str, Any]:
        self.rv += 1
        meta = {**(body.get("metadata") or {}), "namespace": key[0], "name": key[1]}
        meta.update(resourceVersion=str(self.rv), uid=uid or f"configmap-{key[1]}-{self.rv}")
        obj = {"apiVersion": "v1", "kind": "ConfigMap", **body, "metadata": meta}
        existed = key in self.configmaps
        self.configmaps[key] = obj
        self.history["configmaps"].append((self.rv, "MODIFIED" if existed else "ADDED", obj))
        return obj

    def _watch(self, resource: str, request: Request) -> Response:
        since = int(request.query_params.get("resourceVersion") or 0)
        timeout = float(request.query_params.get("timeoutSeconds") or 30)
        with self._lock:
            self.watches[resource] += 1
            epoch, end = self._drop_epoch, self._end_epoch
            too_old = since < self.oldest[resource]

        async def events() -> AsyncIterator[bytes]:
            if too_old:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self.oldest[resource]})",
                    "reason": "Expired",
                    "code": 410,
                }
                yield (json.dumps({"type": "ERROR", "object": status}) + "\n").encode()
                return
            sent = since
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._lock:
                    if self._drop_epoch != epoch:
                        raise Dropped("watch dropped")
                    if self._end_epoch != end:
                        return
                    batch = [(rv, t, o) for rv, t, o in self.history[resource] if rv > sent]
                for rv, kind, obj in batch:
                    sent = rv
                    yield (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                await asyncio.sleep(0.02)

        return StreamingResponse(events(), media_type="application/json")

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="critical", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake API server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self.drop_watches()
        if self._thread is not None:
            self._thread.join(timeout=5)


DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIGMAP_MAX_BYTES = 1024 * 1024


def _invalid_configmap(name: str, body: dict[str, Any]) -> str:
    """What the API server's validation would refuse, or ''."""
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain"
    data = body.get("data") or {}
    if sum(len(k) + len(str(v).encode()) for k, v in data.items()) > CONFIGMAP_MAX_BYTES:
        return "[]: Too long: must have at most 1048576 bytes"
    return ""


def _api_resource(plural: str, kind: str, namespaced: bool) -> dict[str, Any]:
    return {"name": plural, "kind": kind, "namespaced": namespaced, "verbs": ["get", "list", "watch"]}


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig file at ``path`` whose one context talks to ``server`` with a bearer token."""
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: fake, user: u}}]\n"
    )
    return path
