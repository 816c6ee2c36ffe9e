"""The auditors' read-only HTTP API: entries, the latest checkpoint, inclusion and consistency proofs.

Every route needs ``Authorization: Bearer <token>`` with a token from the tokens file (one per line);
tokens are compared with ``hmac.compare_digest``. There is no write route.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from audit.entry import VERDICTS, format_time
from audit.errors import AuditError, ProofError
from audit.log import AuditLog
from audit.stores import Query

MAX_PAGE = 1000
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def read_tokens(path: str | os.PathLike[str]) -> tuple[bytes, ...]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    tokens = tuple(line.strip().encode() for line in lines if line.strip() and not line.startswith("#"))
    if not tokens:
        raise AuditError(f"no tokens in {path}", code="api_no_tokens")
    return tokens


class BearerAuth:
    """ASGI middleware: 401 unless the request carries one of the tokens."""

    def __init__(self, app: ASGI, tokens: tuple[bytes, ...]) -> None:
        self.app = app
        self.tokens = tokens

    def allowed(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        match = False
        for known in self.tokens:  # check them all: timing says nothing about which one matched
            match |= hmac.compare_digest(known, token.strip())
        return match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self.allowed(header):
                response = JSONResponse(
                    {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BadRequest(Exception):
    pass


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


def create_app(log: AuditLog, tokens_file: str | os.PathLike[str]) -> Starlette:
    """The API over an open log (the caller owns and closes it)."""
    tokens = read_tokens(tokens_file)

    def entries(request: Request) -> Response:
        params = request.query_params
        verdict = params.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise BadRequest(f"verdict must be one of {VERDICTS}")
        limit = _int(request, "limit", 100)
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
        rows = log.query(query)
        body = {
            "entries": [{"index": row.index, **row.entry} for row in rows],
            "next": rows[-1].index if len(rows) == limit else None,
        }
        return JSONResponse(body)

    def checkpoint(request: Request) -> Response:
        note = log.checkpoint()
        if note is None:
            return JSONResponse({"error": "no checkpoint yet"}, status_code=404)
        return PlainTextResponse(note)

    def inclusion(request: Request) -> Response:
        index = _int(request, "index")
        size = request.query_params.get("size")
        return PlainTextResponse(log.prove(index, _int(request, "size") if size is not None else None))

    def consistency(request: Request) -> Response:
        size1, size2 = _int(request, "from"), _int(request, "to")
        if size2 > log.store.head().size:
            raise BadRequest(f"the log is smaller than {size2}")
        proof = log.consistency(size1, size2)
        return JSONResponse(
            {"size1": size1, "size2": size2, "proof": [base64.b64encode(h).decode() for h in proof]}
        )

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def audit_error(request: Request, exc: Exception) -> Response:
        code = exc.code if isinstance(exc, AuditError) else "audit_error"
        status = 404 if isinstance(exc, ProofError) else 500
        return JSONResponse({"error": str(exc), "code": code}, status_code=status)

    app = Starlette(
        routes=[
            Route("/v1/entries", entries, methods=["GET"]),
            Route("/v1/checkpoint", checkpoint, methods=["GET"]),
            Route("/v1/proof/inclusion", inclusion, methods=["GET"]),
            Route("/v1/proof/consistency", consistency, methods=["GET"]),
        ],
        exception_handlers={BadRequest: bad_request, AuditError: audit_error},
    )
    app.add_middleware(BearerAuth, tokens=tokens)
    return app
