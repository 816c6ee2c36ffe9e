"""A real HTTP server for the in-browser verification tests: the console's static files, a harness
page, decision/log pages with the console's verification markup under a strict CSP, and the real
auditors' API (audit.api.create_app) over a real SQLite log, mounted under /api.

The API behind /api can be switched to another log between page loads (``serve(log)``); every
request is recorded so tests can check that no token ever appears in a URL.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from audit import AuditLog, make_entry
from audit.api import create_app

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "audit" / "console" / "static"
HARNESS = Path(__file__).parent / "verifyharness"
TOKEN = "auditor-token-7f3a"
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

DECISION_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Decision {index}</title></head><body>
<section id="verification" data-index="{index}" data-api="{api}">
  <p id="verification-status" role="status" aria-live="polite" data-state="idle">Not verified yet</p>
</section>
<script type="module" src="/console/static/verifypage.js"></script>
</body></html>
"""
LOG_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The log</title></head><body>
<section id="consistency" data-api="{api}">
  <p id="consistency-status" role="status" aria-live="polite" data-state="idle"></p>
</section>
<script type="module" src="/console/static/verifypage.js"></script>
</body></html>
"""


def entry(i: int, **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "time": T0 + timedelta(minutes=i),
        "source": "admission",
        "uid": f"uid-{i}",
        "operation": "CREATE",
        "resource": {"apiVersion": "v1", "kind": "Pod", "namespace": f"team-{i % 3}", "name": f"w{i}"},
        "verdict": ("allowed", "denied", "warned")[i % 3],
        "user": f"user{i % 2}",
        "results": [{"policy": "require-gpu-limits", "action": "deny", "outcome": "pass", "message": "é ✓"}],
    }
    values.update(over)
    return make_entry(**values)


@dataclass
class Server:
    base: str
    tokens_file: Path
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (path, query, authorization)
    api: Any = None
    hostile: Callable[[Request], Response] | None = None  # what /hostile answers: a lying API

    def serve(self, log: AuditLog) -> None:
        """Answer /api with the auditors' API over ``log`` from now on."""
        self.api = create_app(log, self.tokens_file)


def _app(server: Server) -> Starlette:
    def base(request: Request) -> str:
        return {"hostile": "/hostile", "elsewhere": "//elsewhere.test/api"}.get(
            request.query_params.get("api", ""), "/api"
        )

    async def decision(request: Request) -> Response:
        page = DECISION_PAGE.format(index=request.path_params["index"], api=base(request))
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    async def log_page(request: Request) -> Response:
        return HTMLResponse(LOG_PAGE.format(api=base(request)), headers={"Content-Security-Policy": CSP})

    async def hostile(request: Request) -> Response:
        assert server.hostile is not None
        return server.hostile(request)

    async def api(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        server.requests.append(
            (
                scope["path"],
                scope.get("query_string", b"").decode(),
                headers.get(b"authorization", b"").decode(),
            )
        )
        await server.api(scope, receive, send)

    return Starlette(
        routes=[
            Route("/page/decision/{index}", decision),
            Route("/page/log", log_page),
            Mount("/console/static", StaticFiles(directory=STATIC)),
            Mount("/verify-test", StaticFiles(directory=HARNESS, html=True)),
            Mount("/api", app=api),
            Route("/hostile/{path:path}", hostile),
        ]
    )


@contextmanager
def running_server(tmp: Path) -> Iterator[Server]:
    """The server on 127.0.0.1 (a secure context: WebCrypto is there) on a free port."""
    tokens = tmp / "tokens"
    tokens.write_text(TOKEN + "\n")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(f"http://127.0.0.1:{sock.getsockname()[1]}", tokens)
    config = uvicorn.Config(_app(server), log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):  # a hang guard: 30 s
        if uv.started:
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the test server did not start within 30 s")
    try:
        yield server
    finally:
        uv.should_exit = True
        thread.join(30)
        sock.close()
