"""coordination.k8s.io/v1 Leases for the fake API server: GET, create (POST) and replace (PUT) as the API
server does them. A create of an existing name is 409 AlreadyExists, a replace whose
metadata.resourceVersion is not the current one is 409 Conflict; ``race_update`` lets another writer
change the Lease just before the next replace is answered (that replace then conflicts)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BASE = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


class FakeLeases:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []  # "GET name", "POST name", "PUT name"
        self.conflicts_sent = 0
        self.race_update: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._rv = 1000
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [
            Route(BASE + "/{name}", self._one, methods=["GET", "PUT"]),
            Route(BASE, self._one, methods=["POST"]),
        ]

    def holder(self, namespace: str, name: str) -> str:
        with self._lock:
            lease = self.objects.get((namespace, name))
            return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    async def _one(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        body = json.loads(await request.body()) if request.method in ("POST", "PUT") else {}
        name = request.path_params.get("name") or str((body.get("metadata") or {}).get("name") or "")
        key = (namespace, name)
        with self._lock:
            self.requests.append(f"{request.method} {name}")
            current = self.objects.get(key)
            if request.method == "GET":
                return (
                    JSONResponse(current)
                    if current
                    else _status(404, "NotFound", f'leases "{name}" not found')
                )
            if request.method == "POST":
                if current is not None:
                    return _status(
                        409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists'
                    )
                return JSONResponse(self._store(key, body), status_code=201)
            if current is None:
                return _status(404, "NotFound", f'leases "{name}" not found')
            if self.race_update is not None:
                race, self.race_update = self.race_update, None
                current = self._store(key, race(current))
            given = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if given != current["metadata"]["resourceVersion"]:
                self.conflicts_sent += 1
                return _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                )
            return JSONResponse(self._store(key, body))

    def _store(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        meta = {**(body.get("metadata") or {}), "namespace": key[0], "name": key[1]}
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", f"lease-{key[1]}")
        obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", **body, "metadata": meta}
        self.objects[key] = obj
        return obj


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason}
    return JSONResponse({**body, "code": code}, status_code=code)
