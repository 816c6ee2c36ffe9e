"""The server's settings, parsed once at the edge (CLI flags) and carried to uvicorn workers as JSON.

With ``--workers N`` uvicorn starts N processes that each build their own app from an import string;
they receive the settings through the ``POLICYENGINE_WEBHOOK_SETTINGS`` environment variable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from webhook.admission import DEFAULT_TIMEOUT
from webhook.bgcluster import DEFAULT_KINDS, DEFAULT_MAX_OBJECTS
from webhook.body import DEFAULT_MAX_BODY
from webhook.connections import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from webhook.inflight import DEFAULT_MAX_IN_FLIGHT
from webhook.servingcert import DEFAULT_INTERVAL as TLS_RELOAD_INTERVAL

ENV_VAR = "POLICYENGINE_WEBHOOK_SETTINGS"


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_http: bool = False
    tls_reload_interval: float | None = TLS_RELOAD_INTERVAL  # seconds between polls of the files; None: never
    client_ca: str | None = None  # /validate needs a client certificate chaining to this CA bundle...
    client_cns: tuple[str, ...] = ()  # ...whose CN or a subjectAltName is one of these (empty: any)
    apiserver_jwks: str | None = None  # ...or a bearer token signed by a key of this JWKS (file or URL)
    apiserver_audience: str | None = None
    apiserver_issuer: str | None = None
    policies: tuple[str, ...] = ()
    include_bundled: bool = True
    allow_empty_policies: bool = False  # serve a set with no policies (refused by default: it admits all)
    # serve while policies lack their GovernanceConfig facts (refused by default: they judge nothing)
    allow_unconfigured: bool = False
    config: tuple[str, ...] = ()
    inventory: str | None = None
    kube: bool = False
    kubeconfig: str | None = None
    workers: int = 1
    metrics_dir: str | None = None  # workers > 1: the private directory where they share metric snapshots
    max_body: int = DEFAULT_MAX_BODY
    timeout: float = DEFAULT_TIMEOUT  # the whole request: read, parse, evaluate, record
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per process, TLS handshakes included
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # accept (or last response) -> complete request head
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_in_flight_bytes: int | None = None  # default: twice max_body
    reload_interval: float | None = 2.0
    startup_wait: float = 30.0
    log_level: str = "INFO"
    audit_log: str | None = None  # SQLite path or postgresql://…
    audit_key: str | None = None
    audit_next_key: str | None = None  # a key the log may be handed over to while serving
    audit_origin: str | None = None
    audit_failure: str = "deny"  # deny | allow
    audit_restart_after: float = 120.0  # seconds of audit outage before /healthz fails (deny mode); 0: never
    audit_api_port: int | None = None  # the auditors' read-only API, on its own port
    audit_api_tokens: str | None = None  # bearer tokens file, one per line
    audit_api_max_connections: int = 16
    audit_api_max_queries: int = 2  # queries answered at once; more are refused with 503
    reservations: str | None = None  # memory | kube | postgresql://…; None: kube with --kube, else memory
    reservation_ttl: float = 120.0  # seconds a reservation lasts when its workload's pods never appear
    background_interval: float | None = None  # seconds between background scans; None: no scans
    background_cpu: float = 0.25  # the scan's share of one core
    # with --kube, the resources a pass reads from the API server (plural.group) and its object bound
    background_kinds: tuple[str, ...] = DEFAULT_KINDS
    background_max_objects: int = DEFAULT_MAX_OBJECTS

    @property
    def watched(self) -> tuple[str, ...]:
        """The files whose change triggers a reload (the bundled packs never change under us)."""
        return (*self.policies, *self.config)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        raw = json.loads(text)
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("policies", "config", "background_kinds", "client_cns"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
