"""The reservation stores the webhook can share between replicas, and ``open_store`` that picks one.

``KubeReservations`` keeps one ConfigMap per quota pool in the webhook's namespace and changes it with
resourceVersion compare-and-swap, the mechanism kube-apiserver's ResourceQuota admission uses for
``status.used``: read, check, replace with the version read; a 409 Conflict means another replica wrote
in between, so read again and check again, a bounded number of times with jittered backoff. When the
retries are spent or the API server cannot be reached, StoreError: the caller returns an error result
(failurePolicy decides), never an unreserved allow. ``PostgresReservations`` (``webhook.pgreservations``)
does the same in one PostgreSQL transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from policyengine.reservations import (
    MemoryReservations,
    PoolFull,
    Reservation,
    ReservationStore,
    StoreError,
    StoreEvents,
)

PREFIX = "policyengine-reservations-"  # + the pool, when it is a DNS-1123 label that fits
HASHED = "policyengine-reservations."  # + slug-digest otherwise: a dot never appears in a literal name
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
RETRIES = 10  # re-reads after a conflict; each conflict means another replica's write landed
BACKOFF = (0.005, 0.2)  # seconds: the first retry's ceiling and the cap (full jitter below them)
MAX_ENTRIES = 1000  # reservations one pool may hold (workloads admitted whose pods are not yet seen)
MAX_BYTES = 1024 * 1024  # a ConfigMap holds at most 1 MiB; nothing larger is read
TIMEOUT = 1.0  # seconds for connect and each read: the review has the webhook's budget
MAX_KEY = 1024  # characters of a workload key (namespace, group, kind and name are far shorter)
MAX_UIDS = 64  # owner uids kept per reservation
T = TypeVar("T")
LABELS = {"app.kubernetes.io/name": "policyengine", "app.kubernetes.io/component": "reservations"}


def open_store(spec: str, kube_api: Any) -> ReservationStore:
    """``memory``, ``kube`` (a ConfigMap per pool through ``kube_api``: the official client's ApiClient,
    or the inventory's adapter over it) or a ``postgresql://`` DSN; ValueError for anything else."""
    if spec == "memory":
        return MemoryReservations()
    if spec == "kube":
        if kube_api is None:
            raise ValueError("--reservations kube needs the Kubernetes API (serve --kube)")
        return KubeReservations(getattr(kube_api, "api_client", kube_api))
    if spec.startswith(("postgresql://", "postgres://")):
        from webhook.pgreservations import PostgresReservations

        return PostgresReservations(spec)
    raise ValueError(f"--reservations {spec!r}: expected memory, kube or a postgresql:// DSN")


def configmap_name(pool: str) -> str:
    """The ConfigMap of a pool: readable when the pool is a short DNS-1123 label, else hashed (sha-256 of
    the pool's bytes) so any string maps to a valid, distinct name."""
    if LABEL.fullmatch(pool) and len(PREFIX + pool) <= 63:
        return PREFIX + pool
    slug = re.sub(r"[^a-z0-9]+", "-", pool.lower())[:16].strip("-")
    digest = hashlib.sha256(pool.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return HASHED + (f"{slug}-{digest}" if slug else digest)


class Conflict(Exception):
    """Another writer changed the object since it was read (409 Conflict or AlreadyExists)."""


class KubeReservations:
    """A ReservationStore on the API server: see the module docstring."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str | None = None,
        retries: int = RETRIES,
        backoff: tuple[float, float] = BACKOFF,
        max_entries: int = MAX_ENTRIES,
        timeout: float = TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from kubernetes import client

        self._core: Any = client.CoreV1Api(api_client)  # raw responses: read bounded, typed by hand
        self.namespace = namespace or _own_namespace()
        self.retries, self.backoff, self.max_entries = retries, backoff, max_entries
        self.timeout = timeout
        self._sleep = sleep
        self._lock = threading.Lock()
        self.conflicts = self.retry_count = self.errors = 0
        self.last_error = ""
        self.events: StoreEvents = lambda event, pool: None  # the webhook counts them as metrics

    # -- ReservationStore ----------------------------------------------------------------------------

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        current = self._guard(lambda: self._read(pool))
        entries = current[0] if current else {}
        return [r for r in entries.values() if r.expires > now]

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        _check(reservation)

        def change(entries: dict[str, Reservation]) -> tuple[dict[str, Reservation] | None, bool]:
            live = {k: r for k, r in entries.items() if r.expires > now}
            others = sum(r.gpus for k, r in live.items() if k != reservation.key)
            if observed + others + reservation.gpus > limit:
                return None, False  # store nothing: a denial writes no version
            if reservation.key not in live and len(live) >= self.max_entries:
                message = (
                    f"quota pool {reservation.pool!r} already holds {len(live)} reservations, "
                    f"the most one pool keeps; its workloads' pods have not been observed"
                )
                raise PoolFull(message)  # a refusal of this workload, not a store failure
            live[reservation.key] = reservation
            return live, True

        return self._update(reservation.pool, change)

    def release(self, pool: str, key: str) -> None:
        def change(entries: dict[str, Reservation]) -> tuple[dict[str, Reservation] | None, None]:
            if key not in entries:
                return None, None
            return {k: r for k, r in entries.items() if k != key}, None

        self._update(pool, change)

    def status(self) -> dict[str, Any]:
        """For /readyz and the metrics: where the reservations live and how the writes went."""
        with self._lock:
            out: dict[str, Any] = {
                "store": "kubernetes",
                "namespace": self.namespace,
                "conflicts": self.conflicts,
                "retries": self.retry_count,
                "errors": self.errors,
            }
            if self.last_error:
                out["lastError"] = self.last_error
            return out

    # -- the compare-and-swap loop -------------------------------------------------------------------

    def _update(
        self, pool: str, change: Callable[[dict[str, Reservation]], tuple[dict[str, Reservation] | None, T]]
    ) -> T:
        for attempt in range(self.retries + 1):
            if attempt:
                self._count(retry=True)
                ceiling = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
                self._sleep(random.uniform(0, ceiling))  # full jitter: replicas that collided spread out
            current = self._guard(lambda: self._read(pool))
            entries, version = current if current else ({}, "")
            new, result = change(entries)
            if new is None:
                return result
            try:
                self._guard(partial(self._write, pool, new, version))
            except Conflict:
                self._count(conflict=True)
                continue
            return result
        message = (
            f"reservations of quota pool {pool!r}: {self.retries} retries spent on conflicting writes "
            f"(ConfigMap {self.namespace}/{configmap_name(pool)})"
        )
        self._failed(message)
        raise StoreError(message)

    def _guard(self, call: Callable[[], T]) -> T:
        """Run an API call; any failure but a conflict becomes a counted StoreError."""
        from kubernetes.client.exceptions import ApiException

        try:
            return call()
        except Conflict:
            raise
        except StoreError as err:  # the object read is not what this store writes
            self._failed(str(err))
            raise
        except ApiException as err:
            message = f"ConfigMap reservations in {self.namespace}: HTTP {err.status} {err.reason}"
        except Exception as err:  # a timeout, a refused or dropped connection
            message = f"ConfigMap reservations in {self.namespace}: {type(err).__name__}: {err}"
        self._failed(message)
        raise StoreError(message)

    def _read(self, pool: str) -> tuple[dict[str, Reservation], str] | None:
        """The pool's entries and the resourceVersion they were read at; None when there is none yet."""
        from kubernetes.client.exceptions import ApiException

        name = configmap_name(pool)
        try:
            response = self._core.read_namespaced_config_map(
                name, self.namespace, _preload_content=False, _request_timeout=(self.timeout, self.timeout)
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        try:
            body = response.read(MAX_BYTES + 4096)  # data plus metadata
        finally:
            response.release_conn()
        where = f"ConfigMap {self.namespace}/{name}"
        if len(body) > MAX_BYTES + 4095:
            raise StoreError(f"{where}: larger than a ConfigMap can be")
        try:
            obj = json.loads(body)
        except ValueError:
            raise StoreError(f"{where}: the answer is not JSON") from None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        version = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
        data = obj.get("data") if isinstance(obj, dict) else None
        if not version:
            raise StoreError(f"{where}: the answer has no metadata.resourceVersion")
        if not isinstance(data, dict) or data.get("pool") != pool:
            raise StoreError(f"{where}: data.pool is not {pool!r} (the object is not this pool's)")
        return decode(data.get("reservations") or "[]", pool, where, self.max_entries), version

    def _write(self, pool: str, entries: dict[str, Reservation], version: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = configmap_name(pool)
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": LABELS}
        if version:
            meta["resourceVersion"] = version  # the compare in compare-and-swap
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        body["data"] = {"pool": pool, "reservations": encode(entries)}
        options: dict[str, Any] = {
            "_request_timeout": (self.timeout, self.timeout),
            "_preload_content": False,
        }
        try:
            if version:
                response = self._core.replace_namespaced_config_map(name, self.namespace, body, **options)
            else:
                response = self._core.create_namespaced_config_map(self.namespace, body, **options)
            try:
                response.read(MAX_BYTES + 4096)  # drained, so the pooled connection is clean for reuse
            finally:
                response.release_conn()
        except ApiException as err:
            # 409: Conflict on replace, AlreadyExists on create (another replica created it first);
            # 404 on replace: deleted since it was read. Each means: read again and check again.
            if err.status == 409 or (err.status == 404 and version):
                raise Conflict(str(err.reason)) from None
            raise

    def _count(self, *, retry: bool = False, conflict: bool = False) -> None:
        with self._lock:
            self.retry_count += retry
            self.conflicts += conflict
        if retry:
            self.events("retry", "")
        if conflict:
            self.events("conflict", "")

    def _failed(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = message
        self.events("error", "")


def encode(entries: dict[str, Reservation]) -> str:
    rows = [
        {"key": r.key, "gpus": r.gpus, "expires": r.expires.isoformat(), "ownerUids": list(r.owner_uids)}
        for _, r in sorted(entries.items())
    ]
    return json.dumps(rows, separators=(",", ":"))


def decode(text: Any, pool: str, where: str, max_entries: int) -> dict[str, Reservation]:
    """The entries of data.reservations, checked field by field: anyone with write access to the
    namespace can edit the ConfigMap, so nothing in it is trusted to be well formed or small."""
    try:
        rows = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        raise StoreError(f"{where}: data.reservations is not a JSON list")
    if len(rows) > max_entries:
        raise StoreError(f"{where}: data.reservations holds {len(rows)} entries, over {max_entries}")
    out: dict[str, Reservation] = {}
    for i, row in enumerate(rows):
        field = f"{where}: data.reservations[{i}]"
        try:
            key, gpus, uids = row["key"], row["gpus"], row.get("ownerUids") or []
            expires = datetime.fromisoformat(row["expires"])
        except (TypeError, KeyError, ValueError, AttributeError):
            raise StoreError(f"{field}: needs key, gpus and an ISO 8601 expires") from None
        if not (isinstance(key, str) and 0 < len(key) <= MAX_KEY) or expires.tzinfo is None:
            raise StoreError(f"{field}: key must be 1-{MAX_KEY} characters and expires carry a zone")
        if not (isinstance(gpus, int) and not isinstance(gpus, bool) and 0 <= gpus <= 1_000_000):
            raise StoreError(f"{field}.gpus: not a count of devices")
        if not (
            isinstance(uids, list)
            and len(uids) <= MAX_UIDS
            and all(isinstance(u, str) and len(u) <= 128 for u in uids)
        ):
            raise StoreError(f"{field}.ownerUids: at most {MAX_UIDS} strings of 128 characters")
        out[key] = Reservation(key, pool, gpus, expires, tuple(uids))
    return out


def _check(reservation: Reservation) -> None:
    if not 0 < len(reservation.key) <= MAX_KEY or len(reservation.owner_uids) > MAX_UIDS:
        raise StoreError(f"reservation {reservation.key[:80]!r}: key or owner uids over the bounds")
    if reservation.expires.tzinfo is None:
        raise StoreError(f"reservation {reservation.key!r}: expires has no time zone")


def _own_namespace() -> str:
    """POD_NAMESPACE (the downward API in deploy/), else the service account's namespace file."""
    namespace = os.environ.get("POD_NAMESPACE", "").strip()
    if not namespace and SA_NAMESPACE.is_file():
        namespace = SA_NAMESPACE.read_text().strip()
    if not namespace:
        raise ValueError(
            "the reservations' namespace is unknown: set POD_NAMESPACE (the webhook's namespace)"
        )
    return namespace
