"""Connection limits in front of uvicorn's HTTP/1.1 protocol: a cap on open connections counted from
the moment one is accepted, and a deadline for the TLS handshake and for each request head.

uvicorn's h11 protocol waits forever for a request head and asyncio gives a TLS handshake 60 s, so a
client that connects and sends nothing held a descriptor and ~0.3 MiB for good; enough of them exhaust
the descriptors or the memory limit. Here the server does the TLS itself (``loop.start_tls`` with a
handshake timeout), so every connection is counted, and can be turned away, when it is accepted:

- a connection has ``header_timeout`` seconds from accept to finish its handshake and send a complete
  request head, and as long again after each response (a partly sent head does not reset the clock);
- at ``max_connections``, a new connection closes the oldest one that is not in the middle of a request
  (a handshake, a head still arriving, an idle keep-alive); if every connection is busy with a request,
  the new one is closed instead. Either is logged once per interval, not once per connection.

The TLS context comes from ``webhook.servingcert``, which swaps in a new one for new handshakes when the
certificate files change; a connection keeps the context its handshake used.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import resource
import socket
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from webhook.coalesce import CoalescingTransport
from webhook.logs import get_logger
from webhook.overload import OverloadLog
from webhook.servingcert import DEFAULT_INTERVAL, ServingCertificate, serving, tls_context

DEFAULT_MAX_CONNECTIONS = 256  # ~0.3 MiB each when idle: ~80 MiB at the cap
DEFAULT_HEADER_TIMEOUT = 5.0
# Descriptors a process needs besides its connections: the listening socket, logs, the audit store,
# the Kubernetes watch, policy files being read, the evaluation threads' imports.
RESERVED_DESCRIPTORS = 128


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    server: str = "webhook"  # names the listener in log lines


def ensure_descriptors(max_connections: int) -> str | None:
    """Raise the soft limit on open files as far as the connection cap needs (up to the hard limit);
    a problem to report when even the hard limit is too low, else None."""
    needed = max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (
            f"{max_connections} connections need {needed} file descriptors but the process may open "
            f"{hard}: lower --max-connections or raise the limit (ulimit -n)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return None


class Gate:
    """The connections of one listener in one process, in the order they started waiting."""

    def __init__(self, limits: ConnectionLimits, tls: ssl.SSLContext | None) -> None:
        self.limits = limits
        self.tls = tls
        self.open: set[ConnectionGuard] = set()
        self.waiting: OrderedDict[ConnectionGuard, None] = OrderedDict()
        fields: dict[str, Any] = {"server": limits.server, "max_connections": limits.max_connections}
        self.evicted = OverloadLog("connection cap reached: closed the oldest idle connection", fields=fields)
        self.refused = OverloadLog(
            "connection cap reached: every connection is busy, refused one", fields=fields
        )

    def admit(self, guard: ConnectionGuard) -> bool:
        if len(self.open) >= self.limits.max_connections:
            if not self.waiting:
                self.refused.hit()
                return False
            oldest = next(iter(self.waiting))
            self.evicted.hit()
            oldest.abort()
            self.leave(oldest)
        self.open.add(guard)
        self.waiting[guard] = None
        return True

    def busy(self, guard: ConnectionGuard, busy: bool) -> None:
        if guard not in self.open:
            return
        if busy:
            self.waiting.pop(guard, None)
        else:
            self.waiting.pop(guard, None)
            self.waiting[guard] = None  # to the end: it has waited least

    def leave(self, guard: ConnectionGuard) -> None:
        self.open.discard(guard)
        self.waiting.pop(guard, None)


class GuardedConfig(uvicorn.Config):
    """uvicorn's Config with the guard as its protocol: TLS is done per connection by the guard, so
    uvicorn itself sees a plain listener. Picklable before ``load`` (``--workers`` sends it to each
    worker process, which builds its own TLS context, certificate watch and gate)."""

    def __init__(
        self,
        app: Any,
        *,
        limits: ConnectionLimits,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_reload_interval: float | None = DEFAULT_INTERVAL,
        client_ca: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            app,
            http=ConnectionGuard,
            loop="asyncio",  # the guard relies on asyncio's callback order (see ConnectionGuard)
            limit_concurrency=None,  # counted by the guard, from accept
            proxy_headers=False,  # called by the API server directly: no X-Forwarded-For is believed
            timeout_keep_alive=max(1, math.ceil(limits.header_timeout)),
            **options,
        )
        self.limits = limits
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_reload_interval = tls_reload_interval
        self.client_ca = client_ca
        self.certificate: ServingCertificate | None = None

    def load(self) -> None:
        super().load()
        gate = self.gate = Gate(self.limits, None)
        if not (self.tls_cert and self.tls_key):
            return

        def serve(context: ssl.SSLContext) -> None:  # new handshakes only: a connection keeps its own
            gate.tls = context

        self.certificate = serving(
            self.tls_cert,
            self.tls_key,
            server=self.limits.server,
            make_context=functools.partial(tls_context, client_ca=self.client_ca),
            interval=self.tls_reload_interval,
            serve=serve,
            client_ca=self.client_ca,
        )
        _say_https(logging.getLogger("uvicorn.error"))

    def bind_socket(self) -> socket.socket:
        if self.tls_cert:
            _say_https(logging.getLogger("uvicorn.error"))
        return super().bind_socket()


class _HTTPSInStartLine(logging.Filter):
    """uvicorn names the scheme after its own TLS setting, which is off here (the guard does TLS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            str(record.msg).startswith("Uvicorn running on")
            and isinstance(args, tuple)
            and args[:1] == ("http",)
        ):
            record.args = ("https", *args[1:])
        return True


def _say_https(logger: logging.Logger) -> None:
    if not any(isinstance(f, _HTTPSInStartLine) for f in logger.filters):
        logger.addFilter(_HTTPSInStartLine())


class ConnectionGuard(asyncio.Protocol):
    """The protocol of an accepted connection until its TLS handshake is done, then its slot in the
    gate; the HTTP protocol takes the transport over once the connection is encrypted."""

    def __init__(
        self,
        config: GuardedConfig,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.gate: Gate = config.gate
        self.loop = _loop or asyncio.get_running_loop()
        self.http = HeadTimeoutH11(
            config=config, server_state=server_state, app_state=app_state, _loop=self.loop, guard=self
        )
        self.raw: asyncio.Transport | None = None
        self.handed_over = False
        self.lost = False
        self.early: list[bytes] = []  # decrypted bytes that arrived before the hand-over
        self.eof = False
        self.timer: asyncio.TimerHandle | None = None
        self.handshake: asyncio.Task[None] | None = None

    # The raw connection (and, during the hand-over, the TLS layer's application side).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport
        if not self.gate.admit(self):
            transport.abort()
            return
        self.timer = self.loop.call_later(self.gate.limits.header_timeout, self.expire)
        if self.gate.tls is None:
            self._hand_over(transport)
        else:
            # The task's first step runs before the loop reads from the socket (the reader is only added
            # by a callback queued behind this one), so start_tls sees the ClientHello, not this protocol.
            self.handshake = self.loop.create_task(self._handshake(transport, self.gate.tls))

    async def _handshake(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        timeout = self.gate.limits.header_timeout
        try:
            tls = await self.loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=timeout,
                ssl_shutdown_timeout=timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError, RuntimeError):
            # Refused, timed out or dropped mid-handshake: nothing to answer, nothing worth a log line.
            self.abort()
            self.release()
            return
        except asyncio.CancelledError:  # the server is stopping
            self.abort()
            self.release()
            raise
        if tls is None or self.lost:
            self.abort()
            self.release()
            return
        self._hand_over(tls)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        transport.set_protocol(self.http)
        self.handed_over = True
        self.http.connection_made(CoalescingTransport(transport, self.loop))
        for chunk in self.early:
            self.http.data_received(chunk)
        self.early.clear()
        if self.eof:
            self.http.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.handshake is None:  # plaintext before TLS began: cannot happen, never trust it
            self.abort()
            return
        self.early.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.handed_over:
            self.release()

    # The slot.
    def expire(self) -> None:
        """No complete request head within the header timeout (from accept, or from the last response)."""
        self.timer = None
        if not self.handed_over or not self.http.in_request:
            self.abort()

    def waiting(self, since_response: bool) -> None:
        self.gate.busy(self, False)
        if since_response:
            self._cancel_timer()
            self.timer = self.loop.call_later(self.gate.limits.header_timeout, self.expire)

    def working(self) -> None:
        self._cancel_timer()
        self.gate.busy(self, True)

    def abort(self) -> None:
        self._cancel_timer()
        if self.raw is not None:  # under TLS too: the encrypted layer goes with the socket
            self.raw.abort()

    def release(self) -> None:
        self._cancel_timer()
        self.gate.leave(self)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class HeadTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol that tells its guard when a request starts and when its response is done."""

    def __init__(self, *, guard: ConnectionGuard, **options: Any) -> None:
        super().__init__(**options)
        self.guard = guard
        self.in_request = False

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before and not self.in_request:
            self.in_request = True  # a complete head arrived: the app answers within its own deadline
            self.guard.working()

    def handle_events(self) -> None:
        before = self.scope
        super().handle_events()
        if self.scope is not before and self.scope is not None:
            # The request's task has not run yet: its scope gains the client certificate the handshake
            # verified (ASGI's "tls" extension; None when the client presented none).
            peer = self.transport.get_extra_info("peercert") if self.transport else None
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions["tls"] = {"client_cert": peer or None}

    def on_response_complete(self) -> None:
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()  # the whole response goes out now, not a loop step later
        super().on_response_complete()
        # A pipelined request may have started inside the call above; then the connection stays busy.
        if self.cycle is None or self.cycle.response_complete:
            self.in_request = False
            self.guard.waiting(since_response=True)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.guard.release()


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket, so that connections queue (rather than being refused) while the process that
    will serve it starts. IPPROTO_TCP, so that asyncio switches Nagle's algorithm off on the connections
    it accepts (webhook.workersocket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(config: GuardedConfig, *, workers: int = 1) -> bool:
    """Serve until stopped (uvicorn's own process supervision with ``workers`` > 1). Whether it started."""
    server = uvicorn.Server(config)
    if workers <= 1:
        server.run()
        return server.started
    from webhook.workersocket import run_workers

    return run_workers(config, server)


def log_started(limits: ConnectionLimits, url: str) -> None:
    get_logger().info(
        "listening",
        extra={
            "server": limits.server,
            "url": url,
            "max_connections": limits.max_connections,
            "header_timeout_s": limits.header_timeout,
        },
    )


__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "Gate",
    "GuardedConfig",
    "HeadTimeoutH11",
    "ensure_descriptors",
    "listen",
    "log_started",
    "run_server",
    "tls_context",
]
