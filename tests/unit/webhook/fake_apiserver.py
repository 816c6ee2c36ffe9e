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
}
DRA = {"resourceclaims", "resourceclaimtemplates", "deviceclasses", "resourceslices"}
SCHEDULING = {"podgroups"}  # scheduling.k8s.io
KUEUE = {"clusterqueues", "localqueues", "resourceflavors"}
STORAGE = {"storageclasses"}  # storage.k8s.io, served at v1
FLUID = {"datasets"}  # data.fluid.io
TRAINER = {"trainingruntimes", "clustertrainingruntimes"}  # trainer.kubeflow.org


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
        # ConfigMaps: (namespace, name) -> object; the requests seen ("GET name", "PUT name", ...)
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.configmap_requests: list[str] = []
        self.conflicts = 0  # answer the next N replaces with 409 Conflict
        self.conflicts_sent = 0
        self.race_create: dict[str, Any] | None = None  # stored just before the next create is answered
        self.configmap_failure: int | None = None  # an HTTP status every ConfigMap request gets
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
            resources, versions = served.get(str(group), (set(), ()))
            if resource not in KINDS or (version is not None) != (resource in resources):
                return JSONResponse({"kind": "Status", "code": 404}, status_code=404)
            if version is not None and version not in versions:
                return JSONResponse({"kind": "Status", "code": 404}, status_code=404)
            if request.query_params.get("watch") in ("true", "1"):
                return self._watch(resource, request)
            with self._lock:
                self.lists[resource] += 1
                items = [
                    {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                    for o in self.objects[resource].values()
                ]
                body = {
                    "kind": KINDS[resource] + "List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.rv)},
                    "items": items,
                }
            return JSONResponse(body)

        async def get_one(request: Request) -> Response:
            p = request.path_params
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
                Route("/api/{version}/namespaces/{namespace}/{resource}/{name}", get_one),
                Route("/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}", get_one),
                Route("/api/v1/{resource}", handle),
                Route("/apis/{group}/{version}/{resource}", handle),
            ]
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
        self.configmaps[key] = obj
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
