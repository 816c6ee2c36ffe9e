"""The cluster's ValidatingAdmissionPolicy param objects, listed and watched for the loaded policy set.

``ParamAPI`` is a ``KubeAPI`` (see ``webhook.cluster``) over any paramKind: it finds the kind's resource
through discovery (``/api/v1``, ``/apis/<group>/<version>``), as the API server maps a paramKind, lists and
watches it cluster-wide, and passes on only the objects some paramRef can select
(``webhook.paramrefs``). What it holds is bounded: at most ``max_objects`` objects and ``max_bytes`` of
them in all, none over ``MAX_OBJECT_BYTES``; past a bound an object is left out, counted, and logged
once per list, and a list stops reading pages. ``ParamInventory`` puts the param objects beside the
cluster inventory's objects, where ``policyengine.params.lookup`` finds them, and follows the policy
set: ``follow`` restarts the param informers when the set of paramKinds or paramRefs changes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.model import Inventory, Policy
from webhook.cluster import WATCH_SECONDS, ClusterInventory, NotServed
from webhook.logs import get_logger
from webhook.paramrefs import ParamKind, param_kinds
from webhook.watches import Watches

PAGE = 50  # param objects may be ConfigMaps of up to 1 MiB: small pages bound what one response holds
MAX_OBJECTS = 10_000
MAX_BYTES = 64 * 1024 * 1024
MAX_OBJECT_BYTES = 1536 * 1024  # a ConfigMap's 1 MiB of data, with room for its metadata
SYNC_WAIT = 30.0  # seconds a reload waits for its new param lists before serving them anyway


@dataclass
class _Held:
    """The objects of one param kind passed on to the informer, by (namespace, name): their sizes."""

    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: int = 0
    warned: bool = False


class ParamAPI:
    """A ``KubeAPI`` over the paramKinds ``kinds`` (keyed as ``ParamKind.key``); see the module docstring."""

    def __init__(
        self,
        api_client: Any,
        kinds: Mapping[str, ParamKind],
        *,
        max_objects: int = MAX_OBJECTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.api_client = api_client
        self.kinds = dict(kinds)
        self.max_objects, self.max_bytes = max_objects, max_bytes
        self._held = {key: _Held() for key in kinds}
        self._count = self._bytes = 0  # what all kinds hold: the sums of their sizes' counts and values
        self._paths: dict[str, str] = {}  # key -> the collection path found through discovery
        self._lock = threading.Lock()
        self._watches = Watches()

    # -- KubeAPI -------------------------------------------------------------------------------------

    def list(self, resource: str, *, continue_token: str | None) -> dict[str, Any]:
        kind = self.kinds[resource]
        if not continue_token:
            self._paths[resource] = self._discover(kind)
            with self._lock:
                old = self._held[resource]
                self._count -= len(old.sizes)
                self._bytes -= sum(old.sizes.values())
                self._held[resource] = _Held()
        query = [("limit", str(PAGE))] + ([("continue", continue_token)] if continue_token else [])
        page = self._get_json(self._paths[resource], query)
        items = []
        for item in page.get("items") or []:
            if isinstance(item, dict) and self._admit(resource, _typed(item, kind)):
                items.append(item)
        meta = dict(page.get("metadata") or {})
        if self._held[resource].dropped:
            meta.pop("continue", None)  # full: the rest would be left out too
            self._warn(resource)
        return {**page, "metadata": meta, "items": items}

    def watch(self, resource: str, *, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        kind, fetch = self.kinds[resource], self._fetcher(self._paths[resource])
        for event in self._watches.stream(fetch, resource_version=resource_version, timeout=timeout):
            yield self._event(resource, kind, str(event["type"]), event["raw_object"])

    def stop(self) -> None:
        self._watches.stop()

    # -- what is held ----------------------------------------------------------------------------------

    def dropped(self) -> dict[str, int]:
        """Param objects left out at the bounds since each kind's last list, by kind."""
        with self._lock:
            return {key: held.dropped for key, held in self._held.items() if held.dropped}

    def _event(self, resource: str, kind: ParamKind, type_: str, obj: Any) -> dict[str, Any]:
        """The event passed on: an object no paramRef selects (or that does not fit) leaves the informer's
        store if it was there; otherwise only its resourceVersion moves the watch on."""
        if not isinstance(obj, dict) or type_ not in ("ADDED", "MODIFIED", "DELETED"):
            return {"type": type_, "object": obj}
        obj = _typed(obj, kind)
        key = _key(obj)
        held = self._held[resource]
        if type_ != "DELETED" and self._admit(resource, obj):
            return {"type": type_, "object": obj}
        if type_ != "DELETED" and held.dropped:
            self._warn(resource)
        with self._lock:
            size = held.sizes.pop(key, None)
            if size is not None:
                self._count -= 1
                self._bytes -= size
        if size is not None:
            return {"type": "DELETED", "object": obj}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": version}}}

    def _admit(self, resource: str, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` is wanted and fits the bounds; records it as held when it is."""
        if not self.kinds[resource].wants(obj):
            return False
        size = len(json.dumps(obj, separators=(",", ":"), default=str))
        key = _key(obj)
        with self._lock:
            held = self._held[resource]
            old = held.sizes.get(key)
            count = self._count - (old is not None)
            total = self._bytes - (old or 0)
            if size > MAX_OBJECT_BYTES or count >= self.max_objects or total + size > self.max_bytes:
                held.dropped += 1
                return False
            held.sizes[key] = size
            self._count, self._bytes = count + 1, total + size
            return True

    def _warn(self, resource: str) -> None:
        held = self._held[resource]
        if held.warned:
            return
        held.warned = True
        get_logger().warning(
            "param objects left out: the bound on param objects held is reached",
            extra={
                "paramKind": resource,
                "max_objects": self.max_objects,
                "max_bytes": self.max_bytes,
                "max_object_bytes": MAX_OBJECT_BYTES,
            },
        )

    # -- HTTP ------------------------------------------------------------------------------------------

    def _discover(self, kind: ParamKind) -> str:
        """The collection path of ``kind``, from the group version's resource list (404 or absent: the
        cluster does not serve it)."""
        base = f"/api/{kind.version}" if not kind.group else f"/apis/{kind.group}/{kind.version}"
        listing = self._get_json(base, [])
        for entry in listing.get("resources") or []:
            name = str(entry.get("name") or "") if isinstance(entry, dict) else ""
            if entry.get("kind") == kind.kind and name and "/" not in name:  # not a subresource
                return f"{base}/{name}"
        raise NotServed(f"{kind.api_version} {kind.kind}")

    def _get_json(self, path: str, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
        response = self._fetcher(path)(_query=query)
        try:
            data = json.loads(response.data)
        finally:
            response.release_conn()
        return data if isinstance(data, dict) else {}

    def _fetcher(self, path: str) -> Any:
        """A function the client's Watch can call: GET ``path`` with the watch arguments as the query."""
        from kubernetes.client.exceptions import ApiException

        names = {
            "resource_version": "resourceVersion",
            "timeout_seconds": "timeoutSeconds",
            "allow_watch_bookmarks": "allowWatchBookmarks",
            "watch": "watch",
        }

        def fetch(**kwargs: Any) -> Any:
            query = list(kwargs.get("_query") or [])
            query += [(names[k], _text(v)) for k, v in kwargs.items() if k in names and v is not None]
            request = self.api_client.param_serialize(
                method="GET",
                resource_path=path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(*request)
            if not 200 <= response.status <= 299:
                response.read()
                if response.status == 404:
                    raise NotServed(path)
                raise ApiException(status=response.status, reason=response.reason)
            return response.response

        return fetch


def list_params(
    api_client: Any,
    policies: Iterable[Policy],
    *,
    max_objects: int = MAX_OBJECTS,
    max_bytes: int = MAX_BYTES,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One read of the param objects ``policies`` read (a scan of the cluster), within the same bounds as
    the informers: the objects, and how many were left out by kind. A kind not served has none."""
    kinds = param_kinds(policies)
    api = ParamAPI(api_client, kinds, max_objects=max_objects, max_bytes=max_bytes)
    objects: list[dict[str, Any]] = []
    for key in kinds:
        token: str | None = None
        try:
            while True:
                page = api.list(key, continue_token=token)
                objects.extend(page["items"])
                token = page["metadata"].get("continue") or None
                if not token:
                    break
        except NotServed:
            continue
    return objects, api.dropped()


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _typed(obj: dict[str, Any], kind: ParamKind) -> dict[str, Any]:
    """List items carry no apiVersion or kind: the paramKind's, which lookup compares with the ref's."""
    obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
    return obj


class ParamInventory:
    """An InventorySource: the cluster inventory ``base`` plus the param objects the policy set reads."""

    def __init__(
        self,
        base: ClusterInventory,
        api_client: Any,
        *,
        watch_seconds: int = WATCH_SECONDS,
        max_objects: int = MAX_OBJECTS,
        max_bytes: int = MAX_BYTES,
        sync_wait: float = SYNC_WAIT,
    ) -> None:
        self.base = base
        self.sync_wait = sync_wait
        self.api_client = api_client
        self.watch_seconds = watch_seconds
        self.max_objects, self.max_bytes = max_objects, max_bytes
        self._kinds: dict[str, ParamKind] = {}
        self._informer: ClusterInventory | None = None
        self._api: ParamAPI | None = None
        self._started = False
        self._lock = threading.Lock()  # follow, start and stop, one at a time
        self._merged: tuple[Inventory, Inventory | None, Inventory] | None = None

    def follow(self, policies: Iterable[Policy]) -> None:
        """Watch the param objects ``policies`` read (on each policy set loaded). A change of paramKinds
        or paramRefs lists them again with the new filter; the objects held so far are served until that
        list is done (or ``sync_wait`` has passed), so a reload does not make the webhook unready."""
        kinds = param_kinds(policies)
        with self._lock:
            if kinds == self._kinds:
                return
            self._kinds = kinds
            api = ParamAPI(self.api_client, kinds, max_objects=self.max_objects, max_bytes=self.max_bytes)
            resources = {key: kind.kind for key, kind in kinds.items()}
            informer = ClusterInventory(api, watch_seconds=self.watch_seconds, resources=resources)
            started = self._started and bool(kinds)
            if started:
                informer.start()
        deadline = time.monotonic() + self.sync_wait
        while started and not informer.status()["ready"] and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            old = self._informer
            self._informer, self._api = (informer, api) if kinds else (None, None)
        if old is not None:
            old.stop()
        get_logger().info("param kinds watched", extra={"paramKinds": sorted(kinds)})

    def current(self) -> Inventory:
        base = self.base.current()
        informer = self._informer
        params = informer.current() if informer is not None else None
        merged = self._merged
        if merged is not None and merged[0] is base and merged[1] is params:
            return merged[2]
        objects = base.objects + (params.objects if params is not None else ())
        inventory = Inventory(namespaces=base.namespaces, objects=objects)
        self._merged = (base, params, inventory)
        return inventory

    def status(self) -> dict[str, Any]:
        out = self.base.status()
        informer, api = self._informer, self._api
        if informer is None or api is None:
            return out
        params = informer.status()
        dropped = api.dropped()
        for key, detail in params["resources"].items():
            if key in dropped:
                detail["leftOut"] = dropped[key]
        out["params"] = params["resources"]
        if not params["ready"]:
            out["ready"] = False
            out["reason"] = "; ".join(filter(None, (out.get("reason"), params["reason"] + " (params)")))
        return out

    def start(self) -> None:
        with self._lock:
            self._started = True
            informer = self._informer
        self.base.start()
        if informer is not None:
            informer.start()

    def stop(self) -> None:
        with self._lock:
            self._started = False
            informer = self._informer
        if informer is not None:
            informer.stop()
        self.base.stop()
