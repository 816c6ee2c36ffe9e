"""In-cluster inventory: list and watch Namespaces, Pods, DRA claims, ResourceSlices, PodGroups, Kueue
queues, StorageClasses, PersistentVolumeClaims, PersistentVolumes, Fluid Datasets and Trainer runtimes
through the Kubernetes API.

One thread per resource runs the informer loop: list (paged) to get every object and a resourceVersion,
then watch from that version, applying ADDED/MODIFIED/DELETED events; a watch that ends normally is
resumed from the last version seen (BOOKMARK events included). A ``410 Gone`` (the version was
compacted away) or a dropped connection means events may have been missed, so the resource is listed
again, with capped exponential backoff on repeated failures. The official ``kubernetes`` client does the
HTTP, authentication and watch framing (``Watch(return_type=object)`` keeps objects as plain dicts);
``current()`` returns an immutable Inventory snapshot, rebuilt only after a change.

Resources outside the core group (``GROUPS``) are read at the newest version served of those listed; a
cluster that serves none has none of them, and is asked again after each watch period in case it is
upgraded. The informer loop serves other resource tables too (``webhook.paramwatch``: VAP param objects).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyengine.model import Inventory
from webhook.watches import Gone, Watches

RESOURCES = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "resourceclaims": "ResourceClaim",
    "resourceclaimtemplates": "ResourceClaimTemplate",
    # DeviceClasses: the extended resource names (spec.extendedResourceName) that ask for DRA devices.
    "deviceclasses": "DeviceClass",
    "resourceslices": "ResourceSlice",  # the GPU memory of DRA devices (policyengine.workloads.slices)
    "podgroups": "PodGroup",
    "clusterqueues": "ClusterQueue",
    "localqueues": "LocalQueue",
    "resourceflavors": "ResourceFlavor",
    # StorageClasses: the driver behind a generic ephemeral volume (policyengine.workloads.volumes).
    "storageclasses": "StorageClass",
    # The data behind pods' claim volumes (policyengine.workloads.persistent).
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "persistentvolumes": "PersistentVolume",
    "datasets": "Dataset",
    "trainingruntimes": "TrainingRuntime",  # the pods a TrainJob runs (policyengine.workloads.runtimes)
    "clustertrainingruntimes": "ClusterTrainingRuntime",
}
# Core resources, read through CoreV1Api: their list function for all namespaces.
CORE = {
    "namespaces": "list_namespace",
    "pods": "list_pod_for_all_namespaces",
    "persistentvolumeclaims": "list_persistent_volume_claim_for_all_namespaces",
    "persistentvolumes": "list_persistent_volume",
}
DRA_GROUP = "resource.k8s.io"
DRA_VERSIONS = ("v1", "v1beta2", "v1beta1")
SCHEDULING_GROUP = "scheduling.k8s.io"
SCHEDULING_VERSIONS = ("v1beta1", "v1alpha3", "v1alpha2")
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSIONS = ("v1beta2", "v1beta1")
FLUID_GROUP = "data.fluid.io"
FLUID_VERSIONS = ("v1alpha1",)
# Resources outside the core group: their API group and the versions tried, newest first.
GROUPS = {
    "resourceclaims": (DRA_GROUP, DRA_VERSIONS),
    "resourceclaimtemplates": (DRA_GROUP, DRA_VERSIONS),
    "deviceclasses": (DRA_GROUP, DRA_VERSIONS),
    "resourceslices": (DRA_GROUP, DRA_VERSIONS),
    "podgroups": (SCHEDULING_GROUP, SCHEDULING_VERSIONS),
    **{r: (KUEUE_GROUP, KUEUE_VERSIONS) for r in ("clusterqueues", "localqueues", "resourceflavors")},
    "storageclasses": ("storage.k8s.io", ("v1",)),
    "datasets": (FLUID_GROUP, FLUID_VERSIONS),
    **{r: ("trainer.kubeflow.org", ("v1alpha1",)) for r in ("trainingruntimes", "clustertrainingruntimes")},
}
PAGE = 500
WATCH_SECONDS = 300
BACKOFF_START, BACKOFF_MAX = 0.2, 10.0


class NotServed(Exception):
    """The API server serves no version of this resource (HTTP 404 for each): nothing to list."""


class KubeAPI(Protocol):
    """The port: list a resource (one page) and watch it. Objects are plain JSON dicts."""

    def list(self, resource: str, *, continue_token: str | None) -> dict[str, Any]: ...

    def watch(self, resource: str, *, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]: ...

    def stop(self) -> None: ...


class KubernetesClientAPI:
    """The adapter over the official client (in-cluster service account, kubeconfig, or a given host)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client  # shared with the reservation store (webhook.reservations)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._versions: dict[str, str] = {}  # grouped resource -> the version found served
        self._watches = Watches()
        self._lock = threading.Lock()

    def _func(self, resource: str) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if resource in CORE:
            return getattr(self._core, CORE[resource]), ()
        group, versions = GROUPS[resource]
        version = self._versions.get(resource, versions[0])
        return self._custom.list_cluster_custom_object, (group, version, resource)

    def list(self, resource: str, *, continue_token: str | None) -> dict[str, Any]:
        if resource in CORE or continue_token:
            return self._list(resource, continue_token)
        group, versions = GROUPS[resource]
        for version in versions:  # a first page finds the newest version served
            self._versions[resource] = version
            try:
                page = self._list(resource, None)
            except NotServed:
                continue
            for item in page.get("items") or []:
                if isinstance(item, dict):  # list items carry no apiVersion: say which they are
                    item.setdefault("apiVersion", f"{group}/{version}")
            return page
        raise NotServed(f"{group} {resource} ({', '.join(versions)})")

    def _list(self, resource: str, continue_token: str | None) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False}
        if continue_token:
            kwargs["_continue"] = continue_token
        func, args = self._func(resource)
        try:
            response = func(*args, **kwargs)
        except ApiException as err:
            if err.status == 410:
                raise Gone(str(err.reason)) from err
            if err.status == 404 and args:
                raise NotServed(resource) from err
            raise
        try:
            data: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        if args and continue_token:
            for item in data.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("apiVersion", f"{args[0]}/{args[1]}")
        return data

    def watch(self, resource: str, *, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        func, args = self._func(resource)
        for event in self._watches.stream(func, *args, resource_version=resource_version, timeout=timeout):
            obj = event["raw_object"]
            if args and isinstance(obj, dict):
                obj.setdefault("apiVersion", f"{args[0]}/{args[1]}")
            yield {"type": event["type"], "object": obj}

    def stop(self) -> None:
        self._watches.stop()


def api_from_config(kubeconfig: str | None = None, *, host: str | None = None) -> KubernetesClientAPI:
    """In-cluster config when running in a pod, else the kubeconfig (``host``: a bare URL, for tests)."""
    return KubernetesClientAPI(api_client_from_config(kubeconfig, host=host))


def api_client_from_config(kubeconfig: str | None = None, *, host: str | None = None) -> Any:
    """The official client's ApiClient, configured as ``api_from_config`` says."""
    from kubernetes import client, config

    if host is not None:
        return client.ApiClient(client.Configuration(host=host))
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return client.ApiClient(configuration)


@dataclass
class _Store:
    kind: str
    objects: dict[tuple[str, str], Any] = field(default_factory=dict)
    resource_version: str = ""
    synced: bool = False
    relists: int = 0
    last_error: str = ""


class ClusterInventory:
    """An InventorySource kept current by list+watch threads (see the module docstring)."""

    def __init__(
        self,
        api: KubeAPI,
        *,
        watch_seconds: int = WATCH_SECONDS,
        backoff: tuple[float, float] = (BACKOFF_START, BACKOFF_MAX),
        on_relist: Callable[[str, str], None] | None = None,
        resources: Mapping[str, str] = RESOURCES,  # resource -> kind: what the threads list and watch
    ) -> None:
        self.api = api
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        self.on_relist = on_relist
        self._stores = {r: _Store(kind) for r, kind in resources.items()}
        self._lock = threading.Lock()
        self._snapshot: Inventory | None = Inventory()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- InventorySource -----------------------------------------------------------------------------

    def current(self) -> Inventory:
        with self._lock:
            if self._snapshot is None:
                held = self._stores.get("namespaces")
                namespaces = {name: obj for (_, name), obj in (held.objects if held else {}).items()}
                objects = [
                    o for r, s in self._stores.items() if r != "namespaces" for o in s.objects.values()
                ]
                self._snapshot = Inventory(namespaces=namespaces, objects=tuple(objects))
            return self._snapshot

    def status(self) -> dict[str, Any]:
        with self._lock:
            resources = {
                r: {
                    "synced": s.synced,
                    "resourceVersion": s.resource_version,
                    "objects": len(s.objects),
                    "relists": s.relists,
                    **({"lastError": s.last_error} if s.last_error else {}),
                }
                for r, s in self._stores.items()
            }
        ready = all(r["synced"] for r in resources.values())
        out: dict[str, Any] = {"ready": ready, "source": "kubernetes", "resources": resources}
        if not ready:
            out["reason"] = "waiting for the first list of " + ", ".join(
                r for r, v in resources.items() if not v["synced"]
            )
        return out

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        for resource in self._stores:
            t = threading.Thread(
                target=self._run, args=(resource,), name=f"inventory-{resource}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self._stopping.set()
        self.api.stop()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()

    # -- the informer loop -------------------------------------------------------------------------

    def _run(self, resource: str) -> None:
        delay = self.backoff[0]
        reason = "start"
        while not self._stopping.is_set():
            try:
                self._list(resource, reason)
                delay = self.backoff[0]
                while not self._stopping.is_set():
                    # Returns when the server ends the watch: resume from the last version seen.
                    self._watch(resource)
            except NotServed:
                # No DRA in this cluster: no claims, and ready; ask again after a watch period.
                self._not_served(resource)
                if self._stopping.wait(self.watch_seconds):
                    return
            except Gone as err:
                reason = "gone"
                self._error(resource, f"410 Gone: {err}")
                continue  # relist at once: the history we would resume from no longer exists
            except Exception as err:  # dropped connection, API error: back off, then relist
                reason = "error"
                self._error(resource, f"{type(err).__name__}: {err}")
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])

    def _list(self, resource: str, reason: str) -> None:
        objects: dict[tuple[str, str], Any] = {}
        token: str | None = None
        version = ""
        while True:
            page = self.api.list(resource, continue_token=token)
            meta = page.get("metadata") or {}
            for item in page.get("items") or []:
                obj = _normalise(item, self._stores[resource].kind)
                objects[_key(obj)] = obj
            token = meta.get("continue") or None
            version = str(meta.get("resourceVersion") or version)
            if not token:
                break
        with self._lock:
            store = self._stores[resource]
            store.objects = objects
            store.resource_version = version
            store.synced = True
            store.relists += 1
            store.last_error = ""
            self._snapshot = None
        if self.on_relist is not None:
            self.on_relist(resource, reason)

    def _watch(self, resource: str) -> None:
        store = self._stores[resource]
        for event in self.api.watch(
            resource, resource_version=store.resource_version, timeout=self.watch_seconds
        ):
            if self._stopping.is_set():
                return
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, dict):
                continue
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            with self._lock:
                if kind in ("ADDED", "MODIFIED"):
                    normal = _normalise(obj, store.kind)
                    store.objects[_key(normal)] = normal
                    self._snapshot = None
                elif kind == "DELETED":
                    store.objects.pop(_key(obj), None)
                    self._snapshot = None
                if version:
                    store.resource_version = version  # BOOKMARK events only move the version

    def _not_served(self, resource: str) -> None:
        with self._lock:
            store = self._stores[resource]
            if store.objects:
                self._snapshot = None
            store.objects, store.synced, store.resource_version = {}, True, ""
            store.last_error = "not served by the API server"

    def _error(self, resource: str, message: str) -> None:
        with self._lock:
            self._stores[resource].last_error = message


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _normalise(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """List items carry no kind; managedFields are bulk the policies never read."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        obj = {**obj, "metadata": meta}
    if "kind" not in obj or "apiVersion" not in obj:
        obj = {"apiVersion": "v1", "kind": kind, **obj}  # a DRA object's apiVersion is set by the adapter
    return obj
