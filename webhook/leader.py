"""Lease-based leader election (a ``coordination.k8s.io/v1`` Lease), as client-go's leaderelection does,
so that one replica writes the background scan's reports while every replica serves admission.

A replica leads while the Lease names it as holder and it keeps renewing it. Each ``step`` reads the Lease
and: creates it when there is none; renews it when it holds it; takes it over when its holder released it
(an empty ``holderIdentity``) or stopped renewing it, that is when the Lease has not changed for
``leaseDurationSeconds`` of this replica's own clock since it last saw it change (holders' clocks are never
compared); else follows. Every write is a replace at the ``resourceVersion`` read, so of two replicas that
race for a Lease the API server lets one win (the other gets 409 Conflict and follows). A leader that has
not renewed within ``renew_deadline`` stops leading before anyone else can take the Lease over. On shutdown
the leader releases the Lease, so that another replica takes over at its next step.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from webhook.logs import get_logger

LEASE_NAME = "policyengine-background"
LEASE_SECONDS = 15
RENEW_DEADLINE = 10.0  # seconds: < LEASE_SECONDS, so a stale leader stops before another takes over
RETRY_PERIOD = 2.0  # seconds between steps


class Conflict(Exception):
    """The Lease changed since it was read (409): another replica wrote it."""


class LeaseAPI(Protocol):
    """The port: read, create and replace one Lease (plain JSON dicts). ``get`` is None when absent;
    ``create`` and ``replace`` raise Conflict on 409."""

    def get(self) -> dict[str, Any] | None: ...

    def create(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, body: dict[str, Any]) -> dict[str, Any]: ...


class KubernetesLeaseAPI:
    """The adapter over the official client's CoordinationV1Api (raw JSON in and out)."""

    def __init__(self, api_client: Any, namespace: str, name: str = LEASE_NAME) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self.namespace, self.name = namespace, name

    def get(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._write(self._api.create_namespaced_lease, self.namespace, body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._write(self._api.replace_namespaced_lease, self.name, self.namespace, body)

    def _write(self, func: Callable[..., Any], *args: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call(func, *args)
        except ApiException as err:
            if err.status == 409:
                raise Conflict(str(err.reason)) from err
            raise

    @staticmethod
    def _call(func: Callable[..., Any], *args: Any) -> dict[str, Any]:
        response = func(*args, _preload_content=False)
        try:
            data: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        return data


@dataclass
class _Seen:
    """The Lease as last read, and when (this replica's clock) it was last seen to change."""

    version: str
    holder: str
    at: float


class LeaderElector:
    """One replica's side of the election. ``step`` once per ``retry_period`` (``start`` runs a thread
    that does); ``is_leader`` is read by whoever must act only while leading."""

    def __init__(
        self,
        api: LeaseAPI,
        identity: str | None = None,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if not 0 < renew_deadline < lease_seconds:
            raise ValueError("renew_deadline must be positive and shorter than lease_seconds")
        self.api = api
        self.identity = identity or f"policyengine-{uuid.uuid4().hex[:12]}"
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.on_change = on_change
        self._seen: _Seen | None = None
        self._renewed: float | None = None  # when this replica last wrote the Lease as its holder
        self._leading = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        renewed = self._renewed
        return renewed is not None and self.clock() - renewed < self.renew_deadline

    def step(self) -> bool:
        """Read the Lease and create, renew or take it over when this replica may. Returns is_leader."""
        try:
            lease = self.api.get()
            if lease is None:
                self._wrote(self.api.create(self._body(None)))
            elif self._may_hold(lease):
                self._wrote(self.api.replace(self._body(lease)))
        except Conflict:
            pass  # another replica wrote it first: follow, and read it again at the next step
        except Exception as err:  # the API server is unreachable: leadership lapses by the renew deadline
            get_logger().warning(
                "leader election step failed", extra={"error": f"{type(err).__name__}: {err}"}
            )
        self._report()
        return self.is_leader

    def _may_hold(self, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        now = self.clock()
        if self._seen is None or (self._seen.version, self._seen.holder) != (version, holder):
            self._seen = _Seen(version, holder, now)
        if not holder or holder == self.identity:
            return True
        duration = spec.get("leaseDurationSeconds")
        seconds = duration if isinstance(duration, int) and duration > 0 else self.lease_seconds
        return now - self._seen.at >= seconds

    def _body(self, lease: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        spec = dict((lease or {}).get("spec") or {})
        held = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            renewTime=now,
            acquireTime=spec.get("acquireTime") if held else now,
            leaseTransitions=transitions if held or lease is None else transitions + 1,
        )
        meta = dict((lease or {}).get("metadata") or {})
        if lease is None:
            meta = {"name": getattr(self.api, "name", LEASE_NAME)}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _wrote(self, lease: dict[str, Any]) -> None:
        self._renewed = self.clock()
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        self._seen = _Seen(version, self.identity, self._renewed)

    def _report(self) -> None:
        leading = self.is_leader
        if leading != self._leading:
            self._leading = leading
            get_logger().info("leadership changed", extra={"leading": leading, "identity": self.identity})
            if self.on_change is not None:
                self.on_change(leading)

    def release(self) -> None:
        """Give the Lease up (shutdown): an empty holder, which the next replica's step takes at once."""
        if not self.is_leader:
            return
        self._renewed = None
        try:
            lease = self.api.get()
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                released = {
                    **spec,
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(),
                }
                self.api.replace({**lease, "spec": released})
        except Exception:  # the Lease then expires by itself
            pass
        self._report()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="policyengine-leader", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop stepping; release the Lease (unless ``release`` is False: a replica that just dies)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if release:
            self.release()
        else:
            self._renewed = None
            self._report()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.step()
            self._stopping.wait(self.retry_period)


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def elector_from(kubeconfig: str | None, env: Mapping[str, str]) -> LeaderElector:
    """The election over the cluster's API: the Lease in the pod's namespace (``POD_NAMESPACE``, else the
    service account's, else ``default``), this replica named by ``POD_NAME`` (else ``HOSTNAME``) plus a
    random suffix, so that a restarted pod is a new candidate."""
    from webhook.cluster import api_client_from_config

    namespace = env.get("POD_NAMESPACE") or _file_text(SERVICE_ACCOUNT_NAMESPACE) or "default"
    name = env.get("POD_NAME") or env.get("HOSTNAME") or "policyengine"
    api = KubernetesLeaseAPI(api_client_from_config(kubeconfig), namespace)
    return LeaderElector(api, f"{name}-{uuid.uuid4().hex[:8]}")


def _file_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(256).strip()
    except OSError:
        return ""


def _micro_time() -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
