"""Who may post reviews: the API server, known by its client certificate (``--client-ca``, ``--client-cn``)
or by its bearer token (``--apiserver-jwks``); either one passing is enough.

A certificate that does not chain to ``--client-ca`` already failed the TLS handshake
(``webhook.connections.tls_context``); here a request to /validate is refused when the connection has no
verified certificate whose subject CN or a subjectAltName is allowed and carries no valid token. A refused
request is answered 401 (no or bad credentials) or 403 (a verified certificate with a name not allowed),
is never evaluated nor recorded, is counted by reason, and is logged with the peer address, at most once
per interval per reason. The probes and /metrics stay open: kubelet presents no certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook.jwks import TokenRefused, TokenVerifier
from webhook.overload import OverloadLog

MAX_SHOWN = 32  # key ids reported in /readyz


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # the metric label: no_credentials, client_name, token_invalid
    detail: str


def certificate_names(peer: Mapping[str, Any]) -> set[str]:
    """The subject CN and the DNS/URI/email subjectAltNames of a certificate as ``ssl`` decodes it."""
    names = {str(value) for rdn in peer.get("subject", ()) for attr, value in rdn if attr == "commonName"}
    names |= {str(value) for kind, value in peer.get("subjectAltName", ()) if kind in ("DNS", "URI", "email")}
    return names


@dataclass
class Authenticator:
    """The credentials /validate accepts. ``client_ca``: a verified client certificate is one;
    ``client_names`` (empty: any) restricts its names; ``tokens``: a bearer token verifying is one."""

    client_ca: bool = False
    client_names: frozenset[str] = frozenset()
    tokens: TokenVerifier | None = None
    logs: dict[str, OverloadLog] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.client_ca or self.tokens is not None

    async def check(self, request: Request) -> Refusal | None:
        """None when the request may be answered; else why not."""
        refusals: list[Refusal] = []
        if self.client_ca:
            refusal = self._certificate(request)
            if refusal is None:
                return None
            refusals.append(refusal)
        if self.tokens is not None:
            refusal = await self._token(request)
            if refusal is None:
                return None
            refusals.append(refusal)
        # The most telling refusal: a named failure (wrong name, bad token) over "nothing presented".
        named = [r for r in refusals if r.reason != "no_credentials"]
        return (named or refusals)[0]

    def _certificate(self, request: Request) -> Refusal | None:
        tls = request.scope.get("extensions", {}).get("tls") or {}
        peer = tls.get("client_cert")
        if not peer:
            return Refusal(401, "no_credentials", "no client certificate and no bearer token")
        if not self.client_names:
            return None
        names = certificate_names(peer)
        if names & self.client_names:
            return None
        shown = ", ".join(sorted(names)[:5]) or "none"
        return Refusal(403, "client_name", f"client certificate names ({shown}) are not allowed")

    async def _token(self, request: Request) -> Refusal | None:
        assert self.tokens is not None
        header = request.headers.get("authorization")
        if header is None:
            return Refusal(401, "no_credentials", "no client certificate and no bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Refusal(401, "token_invalid", "the Authorization header is not a bearer token")
        try:
            await run_in_threadpool(self.tokens.verify, token.strip())  # a key refresh may block
        except TokenRefused as err:
            return Refusal(401, "token_invalid", f"bearer token refused: {err}")
        return None

    def status(self) -> dict[str, Any]:
        """``/readyz`` detail: what is required, and the JWKS in use (reported, not a gate)."""
        body: dict[str, Any] = {"clientCertificate": self.client_ca, "clientNames": sorted(self.client_names)}
        if self.tokens is not None:
            body["tokens"] = {
                "jwks": self.tokens.source,
                "keyIds": sorted(self.tokens.keys)[:MAX_SHOWN],
                "refreshes": self.tokens.refreshes,
                "lastError": self.tokens.last_error,
            }
        return body

    def refuse(self, request: Request, refusal: Refusal) -> Response:
        log = self.logs.get(refusal.reason)
        if log is None:
            log = self.logs[refusal.reason] = OverloadLog(
                "unauthenticated request refused", fields={"reason": refusal.reason}
            )
        client = request.client
        log.hit(peer=f"{client.host}:{client.port}" if client else "unknown", detail=refusal.detail)
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        code = "unauthenticated" if refusal.status == 401 else "forbidden"
        return JSONResponse(
            {"error": {"code": code, "message": refusal.detail}}, status_code=refusal.status, headers=headers
        )
