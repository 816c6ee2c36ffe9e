"""``policyengine serve``: the validating admission webhook (SPEC §9).

The policy set (and ``--inventory``) is loaded once before the server starts, so a broken set exits 2
with every problem listed instead of serving (so does an empty one, unless ``--allow-empty-policies``);
later reloads keep the last good set on failure.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from policyengine.cli import auditing, serveauth, servereads, servetls
from policyengine.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the validating admission webhook",
        description="Serve POST /validate (AdmissionReview v1 and v1beta1), /healthz, /readyz and /metrics "
        "over TLS. Policies reload when their files change or on SIGHUP.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443)")
    p.add_argument(
        "--tls-cert", metavar="FILE", help="serving certificate (PEM), e.g. from `policyengine certs`"
    )
    p.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    servetls.add_arguments(p)
    serveauth.add_arguments(p)
    p.add_argument("--insecure-http", action="store_true", help="plain HTTP, for local development only")
    p.add_argument(
        "--policies", action="append", default=[], metavar="PATH", help="more policies (repeatable)"
    )
    p.add_argument("--no-default-policies", action="store_true", help="do not load the bundled packs")
    p.add_argument(
        "--allow-empty-policies",
        action="store_true",
        help="serve a policy set with no policies (refused by default, at start and on reload)",
    )
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="GovernanceConfig file(s)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--inventory", metavar="FILE", help="cluster objects from a file (namespaces, pods)")
    source.add_argument(
        "--kube", action="store_true", help="list and watch namespaces and pods in the cluster"
    )
    p.add_argument(
        "--kubeconfig", metavar="FILE", help="with --kube outside a cluster (default: ~/.kube/config)"
    )
    p.add_argument(
        "--reservations",
        metavar="STORE",
        help="where GPU reservations of admitted workloads are kept until their pods run: memory (this "
        "process; default with --inventory), kube (the API server, shared by replicas; default with "
        "--kube) or a postgresql:// DSN",
    )
    p.add_argument(
        "--reservation-ttl",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a reservation lasts when its workload's pods never appear (default 120)",
    )
    p.add_argument("--workers", type=int, default=1, metavar="N", help="server processes (default 1)")
    p.add_argument("--max-body", type=int, default=3 * 1024 * 1024, metavar="BYTES", help="default 3 MiB")
    p.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="budget of a whole review: read, parse, evaluate, record (default 3); over it, failurePolicy applies",
    )
    _add_limits(p)
    _add_operations(p)
    p.set_defaults(func=run)


def _add_limits(p: argparse.ArgumentParser) -> None:
    limits = p.add_argument_group("limits", "what one process holds at most (see deploy/README.md)")
    limits.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="open connections, TLS handshakes included; at the cap the oldest idle one is closed (default 256)",
    )
    limits.add_argument(
        "--header-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a connection's time to finish its TLS handshake and send a request head, from accept "
        "and after each response (default 5)",
    )
    limits.add_argument(
        "--max-in-flight",
        type=int,
        default=128,
        metavar="N",
        help="reviews being answered at once; more are answered 503 at once (default 128)",
    )
    limits.add_argument(
        "--max-in-flight-bytes",
        type=int,
        metavar="BYTES",
        help="request bodies held by the reviews in flight, by Content-Length (default twice --max-body)",
    )
    limits.add_argument(
        "--audit-api-max-connections",
        type=int,
        default=16,
        metavar="N",
        help="open connections to the auditors' API (default 16)",
    )
    limits.add_argument(
        "--audit-api-max-queries",
        type=int,
        default=2,
        metavar="N",
        help="auditors' queries answered at once; more are answered 503 (default 2)",
    )


def _add_operations(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unconfigured",
        action="store_true",
        help="serve while policies lack the GovernanceConfig facts they need (refused by default, at start "
        "and on reload); they are not evaluated, and /readyz and a metric name them",
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="policy file poll period; 0: SIGHUP only",
    )
    p.add_argument(
        "--sync-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --kube, how long to wait for the first list before accepting requests (default 30)",
    )
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--background-interval",
        type=duration,
        metavar="DURATION",
        help="re-evaluate every object the inventory holds this often (e.g. 10m, 1h, 90s) and after every "
        "reload, and export policyengine_violations; with --kube one replica, elected by a Lease, "
        "publishes the reports (default: off)",
    )
    p.add_argument(
        "--background-cpu",
        type=float,
        default=0.25,
        metavar="SHARE",
        help="the background scan's share of one core, in (0, 1] (default 0.25)",
    )
    servereads.add_arguments(p)
    auditing.add_arguments(p)
    p.add_argument(
        "--audit-failure",
        choices=("deny", "allow"),
        default="deny",
        help="when the audit log cannot take an entry: deny (answer 500, failurePolicy applies) or allow",
    )
    p.add_argument(
        "--audit-restart-after",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --audit-failure deny, /healthz fails once the audit log has been out of service this "
        "long, so that the kubelet restarts the process (default 120; 0: never)",
    )
    p.add_argument(
        "--audit-api-port", type=int, metavar="PORT", help="serve the auditors' read-only API on this port"
    )
    p.add_argument(
        "--audit-api-tokens", metavar="FILE", help="bearer tokens for the auditors' API, one per line"
    )


def settings_from(args: argparse.Namespace) -> Any:
    from webhook.settings import Settings

    _check_arguments(args)
    return Settings(
        audit_api_port=args.audit_api_port,
        audit_api_tokens=args.audit_api_tokens,
        audit_log=args.audit_log,
        audit_key=args.audit_key,
        audit_next_key=args.audit_next_key,
        audit_origin=args.audit_origin,
        audit_failure=args.audit_failure,
        audit_restart_after=args.audit_restart_after,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure_http=args.insecure_http,
        policies=tuple(args.policies),
        include_bundled=not args.no_default_policies,
        allow_empty_policies=args.allow_empty_policies,
        allow_unconfigured=args.allow_unconfigured,
        config=tuple(args.config),
        inventory=args.inventory,
        kube=args.kube,
        kubeconfig=args.kubeconfig,
        workers=args.workers,
        max_body=args.max_body,
        timeout=args.timeout,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        max_in_flight=args.max_in_flight,
        max_in_flight_bytes=args.max_in_flight_bytes,
        audit_api_max_connections=args.audit_api_max_connections,
        audit_api_max_queries=args.audit_api_max_queries,
        reload_interval=args.reload_interval or None,
        startup_wait=args.sync_timeout,
        log_level=args.log_level,
        reservations=args.reservations,
        reservation_ttl=args.reservation_ttl,
        background_interval=args.background_interval,
        background_cpu=args.background_cpu,
        **servereads.settings(args),
        **servetls.settings(args),
        **serveauth.settings(args),
    )


def _check_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot check: files that must exist, flags that go together, ranges."""
    servetls.check(args)
    serveauth.check(args)
    if (
        args.workers < 1
        or args.max_body < 1
        or args.timeout <= 0
        or min(args.reload_interval, args.sync_timeout, args.audit_restart_after) < 0
    ):
        raise UsageError(
            "--workers, --max-body and --timeout must be positive, --reload-interval, --sync-timeout "
            "and --audit-restart-after not negative"
        )
    _check_limits(args)
    _check_reservations(args)
    _check_background(args)
    if bool(args.audit_log) != bool(args.audit_key):
        raise UsageError(
            "--audit-log and --audit-key go together (create a key with `policyengine audit keygen`)"
        )
    if (
        args.audit_log
        and args.workers > 1
        and not args.audit_log.startswith(("postgresql://", "postgres://"))
    ):
        raise UsageError("--workers > 1 writes one audit log from several processes: use a postgresql:// log")
    if args.audit_api_port is not None:
        if not args.audit_log or not args.audit_api_tokens:
            raise UsageError("--audit-api-port needs --audit-log and --audit-api-tokens")
        if not Path(args.audit_api_tokens).is_file():
            raise UsageError(f"no such file: {args.audit_api_tokens}")
        if args.audit_api_port == args.port:
            raise UsageError("--audit-api-port must differ from --port")


def _load_policies(settings: Any) -> Any:
    """The set to serve, read once its files hold still. A broken set raises LoadError (exit 2 listing
    every problem); an empty one (it would admit everything: only with --allow-empty-policies) and files
    that never hold still raise UsageError (exit 2)."""
    from webhook import server
    from webhook.policies import empty_set_problem, load_settled, unconfigured_problem

    engine = load_settled(server.engine_loader(settings), settings.watched)
    if engine is None:
        raise UsageError(
            f"the policy files kept changing while being read ({', '.join(settings.watched)}): "
            "start again once they are written"
        )
    if not engine.policy_set.policies and not settings.allow_empty_policies:
        raise UsageError(empty_set_problem(settings.policies))
    if engine.policy_set.unconfigured and not settings.allow_unconfigured:
        raise UsageError(unconfigured_problem(engine.policy_set.unconfigured))
    return engine


def _check_reservations(args: argparse.Namespace) -> None:
    store = args.reservations
    if args.reservation_ttl <= 0:
        raise UsageError("--reservation-ttl must be positive")
    if store is None:
        if args.workers > 1 and not args.kube:
            # the default store without --kube is this process's memory: each worker would hand out
            # the same GPUs of a team's quota again
            raise UsageError(
                "--workers > 1 needs a shared reservation store: --reservations postgresql://… "
                "(or --kube, which keeps them in the cluster)"
            )
        return
    if store not in ("memory", "kube") and not store.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--reservations must be memory, kube or a postgresql:// DSN, not {store!r}")
    if store == "kube" and not args.kube:
        raise UsageError("--reservations kube needs --kube (the reservations live in the cluster)")
    if store == "memory" and args.workers > 1:
        raise UsageError("--workers > 1 shares no memory: use --reservations kube or postgresql://")


def _check_background(args: argparse.Namespace) -> None:
    servereads.check(args)
    if not 0 < args.background_cpu <= 1:
        raise UsageError(f"--background-cpu must be in (0, 1], not {args.background_cpu}")
    if args.background_interval and args.workers > 1:
        raise UsageError(
            "--background-interval scans in one process: with --workers > 1 every worker would scan; "
            "run more replicas of one worker instead"
        )


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def duration(text: str) -> float:
    """``1h30m``, ``10m``, ``90s`` or plain seconds -> seconds (at least 1)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration: use hours, minutes and seconds such as 1h30m, 10m or 90s"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 1 <= seconds <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: the interval must be between 1s and 168h")
    return seconds


def _check_limits(args: argparse.Namespace) -> None:
    from webhook.connections import ensure_descriptors

    counts = ("max_connections", "max_in_flight", "audit_api_max_connections", "audit_api_max_queries")
    for name in counts:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.header_timeout <= 0:
        raise UsageError("--header-timeout must be positive")
    if args.max_in_flight_bytes is not None and args.max_in_flight_bytes < args.max_body:
        raise UsageError(
            f"--max-in-flight-bytes ({args.max_in_flight_bytes}) must be at least --max-body "
            f"({args.max_body}): a review of the largest allowed size could never be answered"
        )
    # The auditors' API runs in a process of its own, with its own descriptors.
    problem = ensure_descriptors(args.max_connections)
    if problem is not None:
        raise UsageError(problem)


def run(args: argparse.Namespace) -> int:
    from audit import AuditError
    from webhook import server

    settings = settings_from(args)
    engine = _load_policies(settings)
    try:
        if settings.workers > 1:
            server.inventory_source(settings)  # --inventory problems surface here, before the workers start
            # So do audit log problems (a wrong key, a log that fails recovery): each worker opens its own.
            close = getattr(server.recorder_from(settings), "close", None)
            if callable(close):
                close()
            server.run(settings)
            return 0
        services = server.services_from(settings, env=os.environ, engine=engine)
    except AuditError as err:
        raise UsageError(
            f"cannot open the audit log {settings.audit_log}: {err.code}: {err.message}"
        ) from err
    server.run(settings, services)
    return 0
