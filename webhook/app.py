"""The Starlette application: routes, the steps of answering a review, and error mapping.

``create_app(services)`` builds a new app each call; nothing is built at import time. Routes:
``POST /validate`` (AdmissionReview), ``GET /healthz``, ``GET /readyz`` (JSON detail), ``GET /metrics``.
Every failure of one request is answered as that request's error (400/404/405/408/413/415/500/503 with
a JSON reason); no request can take the server or another request down. A review is answered within
``timeout`` of its arrival (reading, parsing, evaluating and recording it), and only while fewer than
``max_in_flight`` reviews holding ``max_in_flight_bytes`` of bodies are being answered: one more is
refused at once with 503, so that kube-apiserver applies the webhook's failurePolicy. The lifespan (the
evaluation pool, the first load, the reload watch) is ``webhook.lifespan``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from policyengine.engine import Engine
from webhook.admission import RECORD_SHARE, Admitter, Answer
from webhook.body import parse_json, read_limited
from webhook.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InternalError,
    MethodNotAllowed,
    NotFound,
    NotReady,
    Overloaded,
    RecordFailed,
    UnsupportedMediaType,
    WebhookError,
)
from webhook.inflight import InFlight, declared_size
from webhook.lifespan import attestation_status, lifespan
from webhook.logs import get_logger
from webhook.onloop import INLINE_BYTES
from webhook.overload import OverloadLog
from webhook.prometheus import CONTENT_TYPE
from webhook.review import Review, parse_review
from webhook.services import WebhookServices, audit_status
from webhook.servingcert import certificate_status

__all__ = ["INLINE_DECODE", "WebhookServices", "create_app"]

INLINE_DECODE = 64 * 1024  # bodies up to this size are decoded on the event loop; larger ones in a thread

Hold = Callable[[asyncio.Future[Any]], None]


def create_app(services: WebhookServices) -> Starlette:
    in_flight = InFlight(services.max_in_flight, services.max_in_flight_bytes or 2 * services.max_body)
    validate = Validate(services, in_flight)
    probes = Probes(services)
    app = Starlette(
        exception_handlers={HTTPException: _http_error},
        routes=[
            Route("/validate", validate.respond, methods=["POST"]),
            Route("/healthz", probes.healthz, methods=["GET"]),
            Route("/readyz", probes.readyz, methods=["GET"]),
            Route("/metrics", probes.metrics, methods=["GET"]),
        ],
        lifespan=lifespan(services),
    )
    app.state.in_flight = in_flight
    return app


@dataclass(frozen=True)
class _Clock:
    started: float  # perf_counter at arrival, for latencies
    deadline: float  # loop time the answer is due by

    def ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


class Validate:
    """``POST /validate`` in four steps: decode the review, pass the ready gate, admit it, observe it.

    Each step answers its own failures; the in-flight cap is taken before a byte of the body is read and
    held until the last job the request started has ended."""

    def __init__(self, services: WebhookServices, in_flight: InFlight) -> None:
        self.services = services
        self.in_flight = in_flight
        # Reviews up to this size are evaluated on the event loop first (webhook.onloop); 0: never.
        self.inline_bytes = INLINE_BYTES if services.inline_eval else -1
        self.overloaded = OverloadLog(
            "in-flight cap reached: answered 503",
            fields={"max_in_flight": in_flight.max_requests, "max_in_flight_bytes": in_flight.max_bytes},
        )

    async def respond(self, request: Request) -> Response:
        started = time.perf_counter()
        auth = self.services.auth
        if auth is not None and auth.enabled:
            # Before the in-flight cap and the body: an unknown client costs neither a slot nor a read.
            refusal = await auth.check(request)
            if refusal is not None:
                self.services.telemetry.add("unauthenticated", 1, reason=refusal.reason)
                return auth.refuse(request, refusal)
        clock = _Clock(started, asyncio.get_running_loop().time() + self.services.timeout)
        # Admitted before a byte of the body is read: a refusal costs nothing but the head.
        size = declared_size(request.headers.get("content-length"), self.services.max_body)
        ticket = self.in_flight.enter(size)
        if ticket is None:
            return self.refuse()
        try:
            return await self.answer(request, clock, ticket.hold)
        finally:
            ticket.release()

    def refuse(self) -> Response:
        in_flight = self.in_flight
        self.services.telemetry.add("bad_requests", 1, code=Overloaded.code)
        self.overloaded.hit(in_flight=in_flight.requests, in_flight_bytes=in_flight.bytes)
        err = Overloaded(
            f"{in_flight.requests} reviews holding {in_flight.bytes} body bytes are being answered "
            f"(caps: {in_flight.max_requests} reviews, {in_flight.max_bytes} bytes)"
        )
        return JSONResponse(err.as_json(), status_code=err.status, headers={"Retry-After": "1"})

    async def answer(self, request: Request, clock: _Clock, hold: Hold) -> Response:
        review = await self.decode(request, clock, hold)
        if isinstance(review, Response):
            return review
        engine = self.ready()
        if isinstance(engine, Response):
            return engine
        answered = await self.admit(request.app, engine, review, clock, hold)
        if isinstance(answered, Response):
            return answered
        self.observe(review, answered, clock)
        return Response(json.dumps(answered.review, separators=(",", ":")), media_type="application/json")

    async def decode(self, request: Request, clock: _Clock, hold: Hold) -> Review | Response:
        services = self.services
        try:
            return await _decode(
                request,
                services.max_body,
                services.body_timeout,
                decide_by=clock.deadline - services.timeout * RECORD_SHARE,
                hold=hold,
            )
        except Exception as err:
            log = get_logger()
            if not isinstance(err, WebhookError):  # a codec bug answers this request only, with a 500
                log.exception("internal error while decoding", extra={"latency_ms": clock.ms()})
                err = WebhookError(f"internal error: {type(err).__name__}")
            services.telemetry.add("bad_requests", 1, code=err.code)
            log.warning(
                "rejected request",
                extra={
                    "code": err.code,
                    "status": err.status,
                    "latency_ms": clock.ms(),
                    "reason": err.message,
                },
            )
            return JSONResponse(err.as_json(), status_code=err.status)

    def ready(self) -> Engine | Response:
        engine = self.services.policies.engine
        if engine is not None and self.services.inventory.status()["ready"]:
            return engine
        # Deciding without policies, or without the cluster state the policies read, would be a guess:
        # 503 lets kube-apiserver apply the webhook's failurePolicy instead.
        why = "no policy set is loaded yet" if engine is None else "the cluster inventory has not synced yet"
        err = NotReady(why)
        self.services.telemetry.add("bad_requests", 1, code=err.code)
        return JSONResponse(err.as_json(), status_code=err.status)

    async def admit(
        self, app: Starlette, engine: Engine, review: Review, clock: _Clock, hold: Hold
    ) -> Answer | Response:
        telemetry = self.services.telemetry
        telemetry.add("in_flight", 1)
        try:
            admitter: Admitter = app.state.admitter  # built by the lifespan
            return await admitter.admit(
                engine, review, deadline=clock.deadline, hold=hold, inline=review.size <= self.inline_bytes
            )
        except Exception as exc:
            err = exc if isinstance(exc, RecordFailed) else InternalError(type(exc).__name__)
            telemetry.add("bad_requests", 1, code=err.code)
            extra = {**_identity(review), "latency_ms": clock.ms()}
            if isinstance(err, RecordFailed):
                get_logger().error("decision not recorded", extra={**extra, "code": err.code})
            else:  # a bug in one request's handling answers that request only
                get_logger().exception("internal error", extra=extra)
            return JSONResponse(err.as_json(), status_code=err.status)
        finally:
            telemetry.add("in_flight", -1)

    def observe(self, review: Review, answered: Answer, clock: _Clock) -> None:
        req, decision = review.request, answered.decision
        seconds = time.perf_counter() - clock.started
        telemetry = self.services.telemetry
        telemetry.add("requests", 1, verdict=decision.verdict, operation=req.operation)
        telemetry.observe("request_duration", seconds, verdict=decision.verdict)
        log = get_logger()
        if not log.isEnabledFor(logging.INFO):  # the line's fields are not even gathered
            return
        log.info(
            "admission",
            extra={
                **_identity(review),
                "operation": req.operation,
                "verdict": decision.verdict,
                "dry_run": req.dry_run,
                "latency_ms": round(seconds * 1000, 3),
                "timed_out": answered.timed_out,
                "audit_index": answered.audit_index,
                "policy_set": decision.policy_set_digest,
            },
        )


def _identity(review: Review) -> dict[str, Any]:
    req = review.request
    # "name" is taken by LogRecord itself, so the object's identity is one nested field.
    return {"uid": req.uid, "resource": {"kind": req.kind.kind, "namespace": req.namespace, "name": req.name}}


class Probes:
    """``/healthz``, ``/readyz`` and ``/metrics``."""

    def __init__(self, services: WebhookServices) -> None:
        self.services = services

    async def healthz(self, request: Request) -> Response:
        # Liveness fails only for a fail-closed replica whose audit log has been out of service for longer
        # than --audit-restart-after (AuditRecorder.live): the kubelet restarts it.
        recorder = self.services.recorder
        if getattr(recorder, "live", True) is False:
            return JSONResponse(
                {"status": "audit log out of service", "audit": audit_status(recorder)}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        policies = self.services.policies.status()
        inventory = self.services.inventory.status()
        ready = bool(policies["ready"] and inventory["ready"])
        body: dict[str, Any] = {"ready": ready, "policies": policies, "inventory": inventory}
        # Model-signing bundles that do not verify are reported, not a gate: the policies decide.
        attestations = attestation_status(self.services.policies.engine, datetime.now(UTC))
        if attestations is not None:
            body["attestations"] = attestations
        # The serving certificate is reported, not a gate: it is reloaded when its files change.
        tls = certificate_status()
        if tls is not None:
            body["tls"] = tls
        # Who may post reviews is reported, not a gate: a JWKS that fails to refresh keeps its keys.
        if self.services.auth is not None and self.services.auth.enabled:
            body["clientAuth"] = self.services.auth.status()
        # The reservation store is reported, not a gate: only GPU admissions need it (webhook.reserving).
        status = getattr(self.services.ledger.store if self.services.ledger else None, "status", None)
        if callable(status):
            body["reservations"] = await run_in_threadpool(status)  # a shared store's probe is I/O
        audit = audit_status(self.services.recorder)
        if audit is not None:
            body["audit"] = audit
            # Fail-closed auditing: a replica that cannot record decisions takes itself out of service.
            if audit["failureMode"] == "deny" and not audit["healthy"]:
                body["ready"] = ready = False
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.services.telemetry.prometheus_text(), media_type=CONTENT_TYPE)


async def _http_error(request: Request, exc: Exception) -> Response:
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


async def _decode(
    request: Request,
    limit: int,
    timeout: float | None = None,
    *,
    decide_by: float | None = None,
    hold: Hold | None = None,
) -> Review:
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
        return _sized(parse_review(parse_json(body)), len(body))
    job = loop.run_in_executor(None, lambda: parse_review(parse_json(body)))
    job.add_done_callback(lambda done: done.cancelled() or done.exception())  # a late failure is no news
    if hold is not None:
        hold(job)
    left = None if decide_by is None else max(0.0, decide_by - loop.time())
    try:
        return _sized(await asyncio.wait_for(asyncio.shield(job), left), len(body))
    except TimeoutError:
        raise DeadlineExceeded(
            f"the review could not be parsed within the webhook's budget ({len(body)} bytes)"
        ) from None


def _sized(review: Review, size: int) -> Review:
    return Review(review.api_version, review.request, size)
