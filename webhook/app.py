"""The Starlette application: routes, lifespan (threads, reload watch, inventory), error mapping.

``create_app(services)`` builds a new app each call; nothing is built at import time. Routes:
``POST /validate`` (AdmissionReview), ``GET /healthz``, ``GET /readyz`` (JSON detail), ``GET /metrics``.
Every failure of one request is answered as that request's error (400/404/405/408/413/415/500/503 with
a JSON reason); no request can take the server or another request down. A review is answered within
``timeout`` of its arrival (reading, parsing, evaluating and recording it), and only while fewer than
``max_in_flight`` reviews holding ``max_in_flight_bytes`` of bodies are being answered: one more is
refused at once with 503, so that kube-apiserver applies the webhook's failurePolicy.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from webhook.admission import DEFAULT_TIMEOUT, RECORD_SHARE, Admitter
from webhook.body import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, parse_json, read_limited
from webhook.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    RecordFailed,
    UnsupportedMediaType,
    WebhookError,
)
from webhook.inflight import DEFAULT_MAX_IN_FLIGHT, InFlight, declared_size
from webhook.inventories import InventorySource, StaticInventory
from webhook.logs import get_logger
from webhook.overload import OverloadLog
from webhook.policies import MAX_NAMES_SHOWN, LivePolicies, ReloadOutcome
from webhook.prometheus import CONTENT_TYPE
from webhook.recorder import DecisionRecorder, NullRecorder
from webhook.review import parse_review
from webhook.telemetry import Telemetry, build_telemetry

INLINE_DECODE = 64 * 1024  # bodies up to this size are decoded on the event loop; larger ones in a thread
UNSTABLE_RETRY = 1.0  # seconds before a SIGHUP reload that met files being written is done again


@dataclass
class WebhookServices:
    """Everything the app needs, built by the caller (the CLI, a test)."""

    policies: LivePolicies
    inventory: InventorySource = field(default_factory=StaticInventory)
    recorder: DecisionRecorder = field(default_factory=NullRecorder)
    telemetry: Telemetry = field(default_factory=lambda: build_telemetry({}))
    max_body: int = DEFAULT_MAX_BODY
    timeout: float = DEFAULT_TIMEOUT  # seconds from a review's arrival to its answer
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds to receive a whole request body (within timeout)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # reviews being answered at once
    max_in_flight_bytes: int | None = None  # their bodies' bytes at once (default: twice max_body)
    reload_interval: float | None = 2.0  # seconds between file polls; None: reload on SIGHUP only
    handle_sighup: bool = False  # only the process's real server installs the signal handler
    eval_threads: int | None = None  # evaluation pool size (default: the executor's own)
    startup_wait: float = 30.0  # seconds to wait for the inventory's first sync before accepting requests


def create_app(services: WebhookServices) -> Starlette:
    in_flight = InFlight(services.max_in_flight, services.max_in_flight_bytes or 2 * services.max_body)
    overloaded = OverloadLog(
        "in-flight cap reached: answered 503",
        fields={"max_in_flight": in_flight.max_requests, "max_in_flight_bytes": in_flight.max_bytes},
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(
            max_workers=services.eval_threads, thread_name_prefix="policyengine-eval"
        )
        app.state.admitter = Admitter(
            inventory=services.inventory,
            recorder=services.recorder,
            telemetry=services.telemetry,
            executor=executor,
            timeout=services.timeout,
        )
        _register_gauges(services)
        services.inventory.start()
        # uvicorn accepts connections only after startup: load the first set (a --workers process) and
        # let the inventory sync first, so that no request meets a half-started server. A failed load
        # still starts the server, not ready, and is retried when the files change.
        if not services.policies.ready:
            _report(services, await asyncio.to_thread(services.policies.reload), False, "startup")
        deadline = time.monotonic() + services.startup_wait
        while not services.inventory.status()["ready"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reload_now = asyncio.Event()
        loop = asyncio.get_running_loop()
        if services.handle_sighup:
            loop.add_signal_handler(signal.SIGHUP, reload_now.set)
        watcher = asyncio.create_task(_watch(services, reload_now))
        try:
            yield
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            if services.handle_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            services.inventory.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            services.telemetry.tracer_provider.force_flush()

    async def validate(request: Request) -> Response:
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + services.timeout
        # Admitted before a byte of the body is read: a refusal costs nothing but the head.
        ticket = in_flight.enter(declared_size(request.headers.get("content-length"), services.max_body))
        if ticket is None:
            services.telemetry.add("bad_requests", 1, code=Overloaded.code)
            overloaded.hit(in_flight=in_flight.requests, in_flight_bytes=in_flight.bytes)
            err = Overloaded(
                f"{in_flight.requests} reviews holding {in_flight.bytes} body bytes are being answered "
                f"(caps: {in_flight.max_requests} reviews, {in_flight.max_bytes} bytes)"
            )
            return JSONResponse(err.as_json(), status_code=err.status, headers={"Retry-After": "1"})
        try:
            return await answer(request, started, deadline, ticket.hold)
        finally:
            ticket.release()

    async def answer(
        request: Request, started: float, deadline: float, hold: Callable[[asyncio.Future[Any]], None]
    ) -> Response:
        log = get_logger()
        telemetry = services.telemetry
        try:
            review = await _decode(
                request,
                services.max_body,
                services.body_timeout,
                decide_by=deadline - services.timeout * RECORD_SHARE,
                hold=hold,
            )
        except Exception as err:
            if not isinstance(err, WebhookError):  # a codec bug answers this request only, with a 500
                log.exception("internal error while decoding", extra={"latency_ms": _ms(started)})
                err = WebhookError(f"internal error: {type(err).__name__}")
            telemetry.add("bad_requests", 1, code=err.code)
            log.warning(
                "rejected request",
                extra={
                    "code": err.code,
                    "status": err.status,
                    "latency_ms": _ms(started),
                    "reason": err.message,
                },
            )
            return JSONResponse(err.as_json(), status_code=err.status)
        engine = services.policies.engine
        if engine is None or not services.inventory.status()["ready"]:
            # Deciding without policies, or without the cluster state the policies read, would be a
            # guess: 503 lets kube-apiserver apply the webhook's failurePolicy instead.
            telemetry.add("bad_requests", 1, code="not_ready")
            why = (
                "no policy set is loaded yet"
                if engine is None
                else "the cluster inventory has not synced yet"
            )
            return JSONResponse({"error": {"code": "not_ready", "message": why}}, status_code=503)
        req = review.request
        # "name" is taken by LogRecord itself, so the object's identity is one nested field.
        who = {
            "uid": req.uid,
            "resource": {"kind": req.kind.kind, "namespace": req.namespace, "name": req.name},
        }
        telemetry.add("in_flight", 1)
        try:
            admitter: Admitter = request.app.state.admitter
            answered = await admitter.admit(engine, review, deadline=deadline, hold=hold)
        except RecordFailed as err:
            telemetry.add("bad_requests", 1, code=err.code)
            log.error("decision not recorded", extra={**who, "code": err.code, "latency_ms": _ms(started)})
            return JSONResponse(err.as_json(), status_code=err.status)
        except Exception as err:  # a bug in one request's handling answers that request only
            telemetry.add("bad_requests", 1, code="internal_error")
            log.exception("internal error", extra={**who, "latency_ms": _ms(started)})
            error = {"error": {"code": "internal_error", "message": type(err).__name__}}
            return JSONResponse(error, status_code=500)
        finally:
            telemetry.add("in_flight", -1)
        decision = answered.decision
        seconds = time.perf_counter() - started
        telemetry.add("requests", 1, verdict=decision.verdict, operation=req.operation)
        telemetry.observe("request_duration", seconds, verdict=decision.verdict)
        log.info(
            "admission",
            extra={
                **who,
                "operation": req.operation,
                "verdict": decision.verdict,
                "dry_run": req.dry_run,
                "latency_ms": round(seconds * 1000, 3),
                "timed_out": answered.timed_out,
                "audit_index": answered.audit_index,
                "policy_set": decision.policy_set_digest,
            },
        )
        return Response(json.dumps(answered.review, separators=(",", ":")), media_type="application/json")

    async def healthz(request: Request) -> Response:
        # Liveness fails only for a fail-closed replica whose audit log has been out of service for longer
        # than --audit-restart-after (AuditRecorder.live): the kubelet restarts it.
        if getattr(services.recorder, "live", True) is False:
            return JSONResponse(
                {"status": "audit log out of service", "audit": audit_status(services.recorder)},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        policies = services.policies.status()
        inventory = services.inventory.status()
        ready = bool(policies["ready"] and inventory["ready"])
        body: dict[str, Any] = {"ready": ready, "policies": policies, "inventory": inventory}
        audit = audit_status(services.recorder)
        if audit is not None:
            body["audit"] = audit
            # Fail-closed auditing: a replica that cannot record decisions takes itself out of service.
            if audit["failureMode"] == "deny" and not audit["healthy"]:
                body["ready"] = ready = False
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(services.telemetry.prometheus_text(), media_type=CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette answers unknown routes and methods in plain text; every error here is JSON.
        assert isinstance(exc, HTTPException)
        error: WebhookError
        if exc.status_code == 404:
            error = NotFound(f"no route {request.url.path}")
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = WebhookError(str(exc.detail))
            error.status = exc.status_code
        return JSONResponse(error.as_json(), status_code=error.status, headers=exc.headers)

    app = Starlette(
        exception_handlers={HTTPException: http_error},
        routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.in_flight = in_flight
    return app


async def _decode(
    request: Request,
    limit: int,
    timeout: float | None = None,
    *,
    decide_by: float | None = None,
    hold: Callable[[asyncio.Future[Any]], None] | None = None,
) -> Any:
    """The review in the body, read within ``timeout`` and read and parsed by ``decide_by`` (loop time);
    ``hold`` is given the parse job of a large body, which outlives a request that gives up on it."""
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type.lower():
        raise UnsupportedMediaType(f"Content-Type {content_type!r} is not JSON")
    loop = asyncio.get_running_loop()
    if decide_by is not None:
        budget = max(0.0, decide_by - loop.time())
        timeout = budget if timeout is None else min(timeout, budget)
    try:
        body = await read_limited(
            request.stream(),
            content_length=request.headers.get("content-length"),
            limit=limit,
            timeout=timeout,
        )
    except ClientDisconnect:
        raise ClientDisconnected("the client disconnected before sending the whole body") from None
    if len(body) <= INLINE_DECODE:
        return parse_review(parse_json(body))
    job = loop.run_in_executor(None, lambda: parse_review(parse_json(body)))
    job.add_done_callback(lambda done: done.cancelled() or done.exception())  # a late failure is no news
    if hold is not None:
        hold(job)
    left = None if decide_by is None else max(0.0, decide_by - loop.time())
    try:
        return await asyncio.wait_for(asyncio.shield(job), left)
    except TimeoutError:
        raise DeadlineExceeded(
            f"the review could not be parsed within the webhook's budget ({len(body)} bytes)"
        ) from None


async def _watch(services: WebhookServices, reload_now: asyncio.Event) -> None:
    policies = services.policies
    interval = services.reload_interval
    retry = False  # a SIGHUP reload that met files being written is done again, even without polling
    while True:
        if interval is None and not retry:
            await reload_now.wait()
        else:
            with suppress(TimeoutError):
                await asyncio.wait_for(reload_now.wait(), interval or UNSTABLE_RETRY)
        forced = reload_now.is_set() or retry
        reload_now.clear()
        retry = False
        try:
            if forced or await asyncio.to_thread(policies.changed):
                outcome = await asyncio.to_thread(policies.reload, forced)
                _report(services, outcome, forced)
                retry = forced and outcome.result == "unstable"
        except Exception:  # the watch itself must survive anything a filesystem does
            get_logger().exception("policy watch failed")


def _report(services: WebhookServices, outcome: ReloadOutcome, forced: bool, trigger: str = "") -> None:
    log = get_logger()
    telemetry = services.telemetry
    trigger = trigger or ("signal" if forced else "file change")
    # Every shrink is reported, whatever becomes of it: the names of the policies gone, at warning.
    shrink = {"removed": list(outcome.removed[:MAX_NAMES_SHOWN]), "removed_count": len(outcome.removed)}
    if outcome.result == "unstable":
        telemetry.add("reloads", 1, result="retried")
        log.warning(
            "policy files changed while being read; reading them again once they settle",
            extra={"digest": outcome.digest, "trigger": trigger},
        )
    elif outcome.result == "held":
        telemetry.add("shrinks", 1, result="held")
        log.warning(
            "policy set would lose policies; holding it until the same files are read again",
            extra={"digest": outcome.digest, "trigger": trigger, **shrink},
        )
    elif outcome.ok:
        telemetry.add("reloads", 1, result="success")
        if outcome.removed:
            telemetry.add("shrinks", 1, result="applied")
            log.warning(
                "policy set reloaded without some policies",
                extra={
                    "digest": outcome.digest,
                    "previous_digest": outcome.previous_digest,
                    "trigger": trigger,
                    **shrink,
                },
            )
        log.info(
            "policy set loaded",
            extra={
                "digest": outcome.digest,
                "previous_digest": outcome.previous_digest,
                "trigger": trigger,
                "seconds": round(outcome.seconds, 3),
            },
        )
    else:
        telemetry.add("reloads", 1, result="failure")
        telemetry.add("reload_failures", 1)
        if outcome.removed:
            telemetry.add("shrinks", 1, result="refused")
        log.error(
            "policy set reload failed; keeping the last good set",
            extra={
                "digest": outcome.digest,
                "trigger": trigger,
                "problems": list(outcome.problems),
                **(shrink if outcome.removed else {}),
            },
        )


def _register_gauges(services: WebhookServices) -> None:
    def policy_set() -> list[tuple[float, dict[str, str]]]:
        engine = services.policies.engine
        return [(1.0, {"digest": engine.digest})] if engine is not None else []

    def loaded() -> list[tuple[float, dict[str, str]]]:
        engine = services.policies.engine
        return [(float(len(engine.policy_set.policies)) if engine is not None else 0.0, {})]

    def synced() -> list[tuple[float, dict[str, str]]]:
        status = services.inventory.status()
        resources = status.get("resources")
        if isinstance(resources, dict):
            return [(1.0 if r.get("synced") else 0.0, {"resource": k}) for k, r in resources.items()]
        return [(1.0 if status.get("ready") else 0.0, {"resource": "all"})]

    def objects() -> list[tuple[float, dict[str, str]]]:
        inv = services.inventory.current()
        return [
            (float(len(inv.namespaces)), {"resource": "namespaces"}),
            (float(len(inv.objects)), {"resource": "objects"}),
        ]

    def audit_queue() -> list[tuple[float, dict[str, str]]]:
        # An audit recorder with group commit may expose its queue depth; the port does not require it.
        depth = getattr(services.recorder, "queue_depth", None)
        return [(float(depth), {})] if isinstance(depth, int) else []

    def audit_health(name: str) -> Callable[[], list[tuple[float, dict[str, str]]]]:
        def read() -> list[tuple[float, dict[str, str]]]:
            status = audit_status(services.recorder)
            return [(float(status[name]), {})] if status is not None else []

        return read

    services.telemetry.gauges.update(
        {
            "policyengine_audit_queue_depth": audit_queue,
            "policyengine_audit_failures": audit_health("failures"),
            "policyengine_audit_healthy": audit_health("healthy"),
            "policyengine_policy_set_info": policy_set,
            "policyengine_policies_loaded": loaded,
            "policyengine_inventory_synced": synced,
            "policyengine_inventory_objects": objects,
        }
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def audit_status(recorder: object) -> dict[str, Any] | None:
    """Health of an audit recorder that reports it (the port does not require it)."""
    healthy = getattr(recorder, "healthy", None)
    if not isinstance(healthy, bool):
        return None
    status: dict[str, Any] = {
        "healthy": healthy,
        "failures": int(getattr(recorder, "failures", 0)),
        "failureMode": str(getattr(recorder, "failure", "deny")),
    }
    outage = getattr(recorder, "outage", None)
    seconds = outage() if callable(outage) else None
    if isinstance(seconds, float):
        status["outageSeconds"] = round(seconds, 1)
    return status
