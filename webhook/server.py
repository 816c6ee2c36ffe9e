"""Running the webhook: the services from Settings, then uvicorn over TLS (plain HTTP only when asked).

``services_from`` wires the core (policy loading with the ``workload``/``inventory`` views), the
inventory source and telemetry; ``run`` serves one process, or N workers through uvicorn's import-string
factory ``webhook.server:worker_app``, which rebuilds the services from the environment. Connections go
through ``webhook.connections`` (a connection cap and handshake/head deadlines). The auditors' API runs
in a process of its own, so that its queries, connections and descriptors cannot slow or starve
admission.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from policyengine.engine import Engine
from policyengine.errors import UsageError
from policyengine.policyset import load_policy_set
from policyengine.scale import ParentLookup
from webhook.app import WebhookServices, create_app
from webhook.background import BackgroundScanner
from webhook.clientauth import Authenticator
from webhook.connections import ConnectionLimits, GuardedConfig, listen, log_started, run_server
from webhook.inventories import InventorySource, StaticInventory
from webhook.jwks import TokenVerifier
from webhook.leader import LeaderElector, elector_from
from webhook.logs import configure, get_logger, log_config
from webhook.policies import LivePolicies
from webhook.recorder import DecisionRecorder, NullRecorder
from webhook.reserving import ledger_from, store_spec
from webhook.settings import ENV_VAR, Settings
from webhook.telemetry import Telemetry, build_telemetry
from webhook.workermetrics import SharedMetrics

# How much lower than admission the auditors' API process runs (nice(2) increment): under CPU
# contention its queries wait, admission does not.
AUDIT_API_NICENESS = 10


def engine_loader(settings: Settings) -> Callable[[], Engine]:
    """Load the whole policy set and build its Engine, as ``check`` does (raises LoadError)."""

    def load() -> Engine:
        policy_set = load_policy_set(
            list(settings.policies),
            config_paths=list(settings.config),
            include_bundled=settings.include_bundled,
        )
        return Engine(policy_set)

    return load


def inventory_source(settings: Settings, telemetry: Telemetry | None = None) -> InventorySource:
    if settings.kube:
        from webhook.cluster import ClusterInventory, api_from_config
        from webhook.paramwatch import ParamInventory

        def relisted(resource: str, reason: str) -> None:
            if telemetry is not None:
                telemetry.add("relists", 1, resource=resource, reason=reason)

        api = api_from_config(settings.kubeconfig)
        return ParamInventory(ClusterInventory(api, on_relist=relisted), api.api_client)
    if settings.inventory:
        from policyengine.inventory import from_documents
        from policyengine.loader import read_documents

        docs = read_documents([settings.inventory])
        return StaticInventory(from_documents([d.data for d in docs]), origin=settings.inventory)
    return StaticInventory()


def parent_lookup(settings: Settings) -> ParentLookup | None:
    """With --kube, scale requests are judged through the workload they scale, read from the API."""
    if not settings.kube:
        return None
    from webhook.parents import parents_from_config

    return parents_from_config(settings.kubeconfig, max_bytes=settings.max_body)


def background_from(
    settings: Settings, policies: LivePolicies, inventory: InventorySource, telemetry: Telemetry
) -> tuple[BackgroundScanner | None, LeaderElector | None]:
    """With --background-interval: the scanner, and with --kube the Lease election of the replica that
    publishes (without --kube this process is the only one that sees its inventory: it publishes). With
    --kube each pass also reads the AI workloads (``--background-kinds``) from the API server and the
    leader writes the OpenReports; without it the pass judges what the inventory holds and logs a summary."""
    if not settings.background_interval:
        return None, None
    leader = elector_from(settings.kubeconfig, os.environ) if settings.kube else None
    kube: dict[str, Any] = {}
    if settings.kube:
        from webhook.bgcluster import ClusterObjects, OpenReportsWriter
        from webhook.cluster import api_client_from_config
        from webhook.kubescan import KubeRest

        rest = KubeRest(api_client_from_config(settings.kubeconfig))
        kube["sink"] = OpenReportsWriter(rest)
        kube["objects"] = ClusterObjects(
            rest, kinds=settings.background_kinds, max_objects=settings.background_max_objects
        )
    scanner = BackgroundScanner(
        policies,
        inventory,
        telemetry,
        interval=settings.background_interval,
        cpu_share=settings.background_cpu,
        leads=(lambda: leader.is_leader) if leader is not None else (lambda: True),
        **kube,
    )
    if leader is not None:  # a replica that takes over publishes at once, not an interval later
        leader.on_change = lambda leading: scanner.trigger() if leading else None
    return scanner, leader


def recorder_from(settings: Settings) -> DecisionRecorder:
    """The audit log the settings name (each worker process opens its own connection), else none."""
    if not settings.audit_log or not settings.audit_key:
        return NullRecorder()
    from webhook.audit_recorder import AuditRecorder

    return AuditRecorder.open(
        settings.audit_log,
        settings.audit_key,
        origin=settings.audit_origin,
        next_key=settings.audit_next_key,
        failure=settings.audit_failure,
        restart_after=settings.audit_restart_after,
    )


def services_from(
    settings: Settings,
    *,
    env: Mapping[str, str],
    engine: Engine | None = None,
    recorder: DecisionRecorder | None = None,
    handle_sighup: bool = True,
) -> WebhookServices:
    policies = LivePolicies(
        engine_loader(settings),
        settings.watched,
        allow_empty=settings.allow_empty_policies,
        allow_unconfigured=settings.allow_unconfigured,
    )
    if engine is not None:
        policies.serve(engine)
    telemetry = build_telemetry(env)
    inventory = inventory_source(settings, telemetry)
    background, leader = background_from(settings, policies, inventory, telemetry)
    return WebhookServices(
        policies=policies,
        inventory=inventory,
        recorder=recorder or recorder_from(settings),
        telemetry=telemetry,
        max_body=settings.max_body,
        timeout=settings.timeout,
        max_in_flight=settings.max_in_flight,
        max_in_flight_bytes=settings.max_in_flight_bytes,
        reload_interval=settings.reload_interval,
        startup_wait=settings.startup_wait,
        handle_sighup=handle_sighup,
        parents=parent_lookup(settings),
        ledger=ledger_from(settings, telemetry, _kube_api(settings)),
        background=background,
        leader=leader,
        auth=authenticator(settings),
    )


def authenticator(settings: Settings) -> Authenticator | None:
    """Who may post reviews (None: anyone who can connect). A bad JWKS at start fails the start."""
    tokens = None
    if settings.apiserver_jwks:
        tokens = TokenVerifier(
            settings.apiserver_jwks,
            audience=settings.apiserver_audience or "",
            issuer=settings.apiserver_issuer,
        )
    if not settings.client_ca and tokens is None:
        return None
    return Authenticator(
        client_ca=bool(settings.client_ca), client_names=frozenset(settings.client_cns), tokens=tokens
    )


def _kube_api(settings: Settings) -> Any:
    """The API client the ``kube`` reservation store writes through (None for the other stores)."""
    if store_spec(settings) != "kube":
        return None
    from webhook.cluster import api_from_config

    return api_from_config(settings.kubeconfig)


def worker_app() -> Starlette:
    """uvicorn factory for ``--workers N``: each worker loads its own set (in the background), and shares
    its metrics with the others through the parent's directory, so that /metrics shows them all."""
    settings = Settings.from_json(os.environ[ENV_VAR])
    configure(settings.log_level)
    services = services_from(settings, env=os.environ)
    services.freeze_heap = True  # the worker process serves nothing else
    app = create_app(services)
    if settings.metrics_dir:
        telemetry = services.telemetry
        shared = SharedMetrics(Path(settings.metrics_dir), telemetry.families)
        telemetry.exposition = shared.render
        app.router.lifespan_context = shared.around(app.router.lifespan_context)
    return app


def uvicorn_options(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level),
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


def guarded_config(settings: Settings, app: Any, limits: ConnectionLimits, **options: Any) -> GuardedConfig:
    tls = (
        {}
        if settings.insecure_http
        else {
            "tls_cert": settings.tls_cert,
            "tls_key": settings.tls_key,
            "tls_reload_interval": settings.tls_reload_interval,
        }
    )
    return GuardedConfig(app, limits=limits, **{**uvicorn_options(settings), **tls, **options})


def _client_ca(settings: Settings) -> str | None:
    """The webhook listener's client CA (the auditors' API has its own tokens and asks for none)."""
    return None if settings.insecure_http else settings.client_ca


def webhook_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(settings.max_connections, settings.header_timeout, server="webhook")


def audit_api_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(settings.audit_api_max_connections, settings.header_timeout, server="audit-api")


def start_audit_api(settings: Settings) -> Callable[[], None]:
    """Serve the auditors' read-only API (audit.api) on its own port in a process of its own, over the
    same TLS certificate as the webhook. The port is bound here, before admission starts, so a busy
    port fails the start and no auditor's connection is refused while the process starts. Returns the
    function that stops it."""
    assert settings.audit_log and settings.audit_api_tokens and settings.audit_api_port
    try:
        sock = listen(settings.host, settings.audit_api_port)
    except OSError as err:
        raise UsageError(
            f"cannot listen on {settings.host}:{settings.audit_api_port} for the auditors' API: {err.strerror}"
        ) from None
    process = multiprocessing.get_context("spawn").Process(
        target=serve_audit_api,
        args=(settings.to_json(), sock, os.getpid()),
        name="policyengine-audit-api",
        daemon=True,
    )
    process.start()
    sock.close()  # the child has its own copy

    def stop() -> None:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
            process.join(timeout=15)
        if process.is_alive():
            process.kill()
            process.join()

    return stop


def serve_audit_api(settings_json: str, sock: socket.socket, parent: int) -> None:
    """The auditors' API process: read-only log, query cap, connection cap; ends with its parent."""
    from audit import AuditLog
    from audit.api import ConsoleOptions
    from audit.api import create_app as create_audit_app
    from audit.console.policyset import served_exceptions

    settings = Settings.from_json(settings_json)
    configure(settings.log_level)
    # Admission shares the pod's CPUs with this process: the kernel gives them to admission first.
    with contextlib.suppress(OSError):
        os.nice(AUDIT_API_NICENESS)
    assert settings.audit_log and settings.audit_api_tokens and settings.audit_api_port
    log = AuditLog.open(settings.audit_log)  # read-only: no signer
    console = ConsoleOptions(served_exceptions(settings.policies, settings.config, settings.include_bundled))
    app = create_audit_app(
        log, settings.audit_api_tokens, max_queries=settings.audit_api_max_queries, console=console
    )
    limits = audit_api_limits(settings)
    server = uvicorn.Server(guarded_config(settings, app, limits, port=settings.audit_api_port))

    def orphaned() -> None:  # the webhook died without stopping us (SIGKILL, OOM): stop too
        while os.getppid() == parent:
            time.sleep(1)
        server.should_exit = True

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    scheme = "http" if settings.insecure_http else "https"
    log_started(limits, f"{scheme}://{settings.host}:{settings.audit_api_port}")
    try:
        server.run(sockets=[sock])
    finally:
        log.close()


def run(settings: Settings, services: WebhookServices | None = None) -> None:
    """Serve until SIGINT/SIGTERM. ``services`` (one process only) may be prebuilt by the caller."""
    configure(settings.log_level)
    _exit_cleanly_on_sigterm()
    stop_audit_api = start_audit_api(settings) if settings.audit_api_port else None
    try:
        _serve(settings, services)
    finally:
        if stop_audit_api is not None:
            stop_audit_api()


def _exit_cleanly_on_sigterm() -> None:
    """After its graceful shutdown uvicorn re-raises the SIGTERM it caught, under the handler that was
    there before it. With the default one the process dies on the spot, skipping every ``finally``: no
    telemetry flush, no audit log close. A handler that raises SystemExit lets them run."""
    if threading.current_thread() is not threading.main_thread():
        return

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, exit_now)


def _serve(settings: Settings, services: WebhookServices | None) -> None:
    if settings.insecure_http:
        get_logger().warning("serving plain HTTP (--insecure-http): for local development only")
    limits = webhook_limits(settings)
    scheme = "http" if settings.insecure_http else "https"
    log_started(limits, f"{scheme}://{settings.host}:{settings.port}")
    if settings.workers > 1:
        _serve_workers(settings, limits)
        return
    services = services or services_from(settings, env=os.environ)
    services.freeze_heap = True  # this process serves nothing else
    try:
        config = guarded_config(settings, create_app(services), limits, client_ca=_client_ca(settings))
        if not run_server(config):
            sys.exit(3)  # uvicorn's "startup failed" (the port is taken, the lifespan failed): logged
    finally:
        services.telemetry.shutdown()
        # A clean stop finishes the audit writer (the checkpoint of the last batch is signed after its
        # requests were answered) and closes the log, instead of leaving that to the next start.
        close = getattr(services.recorder, "close", None)
        if callable(close):
            close()


def _serve_workers(settings: Settings, limits: ConnectionLimits) -> None:
    """N worker processes under uvicorn's supervision, with a private directory (mode 0700) for their
    metric snapshots, made before they start and removed once they have all stopped."""
    metrics_dir = tempfile.mkdtemp(prefix="policyengine-metrics-")
    try:
        os.environ[ENV_VAR] = dataclasses.replace(settings, metrics_dir=metrics_dir).to_json()
        config = guarded_config(
            settings,
            "webhook.server:worker_app",
            limits,
            factory=True,
            workers=settings.workers,
            client_ca=_client_ca(settings),
        )
        if not run_server(config, workers=settings.workers):
            sys.exit(3)  # the port is taken: logged
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
