"""The auditors' read-only HTTP API: entries, the latest checkpoint, inclusion and consistency proofs.

Every route needs ``Authorization: Bearer <token>`` with a token from the tokens file (one per line);
tokens are compared with ``hmac.compare_digest``. There is no write route. At most ``max_queries``
requests are answered at once (each in a worker thread, off the event loop); one more is refused at
once with 503 and ``Retry-After``, so a burst of large queries cannot take the CPU from the process
around it. (``policyengine serve`` also runs this API in a process of its own.)
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from audit import errors
from audit.console import Console, ExceptionInfo, LogStatus, is_public
from audit.entry import VERDICTS, format_time
from audit.errors import AuditError, EntriesArchived, ProofError
from audit.log import AuditLog
from audit.stores import Query

MAX_PAGE = 1000
DEFAULT_PAGE = 100
DEFAULT_MAX_QUERIES = 2
BUSY_REPORT_INTERVAL = 10.0  # seconds between two log lines about refused queries
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def read_tokens(path: str | os.PathLike[str]) -> tuple[bytes, ...]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    tokens = tuple(line.strip().encode() for line in lines if line.strip() and not line.startswith("#"))
    if not tokens:
        raise AuditError(f"no tokens in {path}", code=errors.API_NO_TOKENS)
    return tokens


class BearerAuth:
    """ASGI middleware: 401 unless the request carries one of the tokens, or its path is ``public``
    (the console's page shells and static files, which hold nothing from the log)."""

    def __init__(
        self, app: ASGI, tokens: tuple[bytes, ...], public: Callable[[str], bool] = lambda path: False
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.public = public

    def allowed(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        match = False
        for known in self.tokens:  # check them all: timing says nothing about which one matched
            match |= hmac.compare_digest(known, token.strip())
        return match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.public(str(scope.get("path", ""))):
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self.allowed(header):
                response = JSONResponse(
                    {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class ConsoleOptions:
    """What the console knows beyond the log: the policy set's exceptions (approver, expiry) and the
    status of this process's own verification of the log."""

    exceptions: tuple[ExceptionInfo, ...] = ()
    status: LogStatus | None = None


class BadRequest(Exception):
    pass


Handler = Callable[[Request], Response]


class QueryCap:
    """Runs at most ``limit`` handlers at once; one more is answered 503 at once, not queued. Refusals
    are logged once per interval with their count."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.slots = threading.BoundedSemaphore(limit)
        self.refused = 0
        self._unreported = 0
        self._reported_at: float | None = None
        self._clock = clock
        self._lock = threading.Lock()

    def __call__(self, handler: Handler) -> Handler:
        def capped(request: Request) -> Response:
            if not self.slots.acquire(blocking=False):
                self._refuse()
                return JSONResponse(
                    {"error": f"{self.limit} queries are being answered; retry shortly", "code": errors.BUSY},
                    status_code=503,
                    headers={"Retry-After": "1"},
                )
            try:
                return handler(request)
            finally:
                self.slots.release()

        return capped

    def _refuse(self) -> None:
        with self._lock:
            self.refused += 1
            self._unreported += 1
            now = self._clock()
            if self._reported_at is not None and now - self._reported_at < BUSY_REPORT_INTERVAL:
                return
            count, self._unreported, self._reported_at = self._unreported, 0, now
        logging.getLogger("policyengine.audit.api").warning(
            "auditors' API at its query cap: refused with 503",
            extra={"max_queries": self.limit, "occurrences": count},
        )


def _int(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not -(2**63) <= value < 2**63:  # what the stores' integer columns hold
        raise BadRequest(f"{name} is out of range")
    return value


def _time(request: Request, name: str) -> str | None:
    from datetime import UTC, datetime

    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return format_time(when if when.tzinfo else when.replace(tzinfo=UTC))
    except (ValueError, OverflowError) as exc:  # a valid time can fall outside UTC's range
        raise BadRequest(f"{name} must be an ISO 8601 time") from exc


def create_app(
    log: AuditLog,
    tokens_file: str | os.PathLike[str],
    *,
    max_queries: int = DEFAULT_MAX_QUERIES,
    console: ConsoleOptions | None = None,
) -> Starlette:
    """The API over an open log (the caller owns and closes it), with the auditors' console under
    ``/console`` (its data behind the same tokens and query cap)."""
    tokens = read_tokens(tokens_file)
    cap = QueryCap(max_queries)
    routes = _Routes(log)
    options = console or ConsoleOptions()
    pages = Console(log, cap=cap, exceptions=options.exceptions, status=options.status)
    app = Starlette(
        routes=[
            # Sync handlers: Starlette runs them in worker threads, never on the event loop.
            Route("/v1/entries", cap(routes.entries), methods=["GET"]),
            Route("/v1/checkpoint", cap(routes.checkpoint), methods=["GET"]),
            Route("/v1/proof/inclusion", cap(routes.inclusion), methods=["GET"]),
            Route("/v1/proof/consistency", cap(routes.consistency), methods=["GET"]),
            *pages.routes(),
        ],
        exception_handlers={BadRequest: _bad_request, AuditError: _audit_error},
    )
    app.add_middleware(BearerAuth, tokens=tokens, public=is_public)
    app.state.query_cap = cap
    app.state.console = pages
    return app


class _Routes:
    """The read-only routes over one log."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def entries(self, request: Request) -> Response:
        params = request.query_params
        verdict = params.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise BadRequest(f"verdict must be one of {VERDICTS}")
        limit = _int(request, "limit", DEFAULT_PAGE)
        if not 0 < limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
        query = Query(
            since=_time(request, "since"),
            until=_time(request, "until"),
            verdict=verdict,
            policy=params.get("policy"),
            namespace=params.get("namespace"),
            user=params.get("user"),
            kind=params.get("kind"),
            source=params.get("source"),
            after=_int(request, "after", -1),
            limit=limit,
        )
        rows = self.log.query(query)
        body = {
            "entries": [{"index": row.index, **row.entry} for row in rows],
            "next": rows[-1].index if len(rows) == limit else None,
        }
        return JSONResponse(body)

    def checkpoint(self, request: Request) -> Response:
        note = self.log.checkpoint()
        if note is None:
            return JSONResponse({"error": "no checkpoint yet"}, status_code=404)
        return PlainTextResponse(note)

    def inclusion(self, request: Request) -> Response:
        index = _int(request, "index")
        size = request.query_params.get("size")
        return PlainTextResponse(self.log.prove(index, _int(request, "size") if size is not None else None))

    def consistency(self, request: Request) -> Response:
        size1, size2 = _int(request, "from"), _int(request, "to")
        if size2 > self.log.store.head().size:
            raise BadRequest(f"the log is smaller than {size2}")
        proof = self.log.consistency(size1, size2)
        return JSONResponse(
            {"size1": size1, "size2": size2, "proof": [base64.b64encode(h).decode() for h in proof]}
        )


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _audit_error(request: Request, exc: Exception) -> Response:
    code = exc.code if isinstance(exc, AuditError) else AuditError.code
    # Gone: entries archived and dropped from the live log (the message names the archive).
    status = 404 if isinstance(exc, ProofError) else 410 if isinstance(exc, EntriesArchived) else 500
    return JSONResponse({"error": str(exc), "code": code}, status_code=status)
