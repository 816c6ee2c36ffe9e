"""The listening sockets serve hands to its workers and to the audit API: the connections accepted on
them are TCP connections with Nagle's algorithm off, as asyncio gives the sockets it opens itself.

asyncio switches Nagle off (TCP_NODELAY) only on sockets whose protocol number is IPPROTO_TCP. A socket
made with protocol 0 accepts connections with protocol 0, so a response written in two sends (a TLS
record for the head, another for the body) waits for the client's delayed ACK of the first: about 40 ms
a response on Linux, which left ``serve --workers 2`` idle most of the time and slower than one worker.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from multiprocessing.reduction import ForkingPickler

from webhook.connections import listen
from webhook.workersocket import ACCEPT_BATCH, SharedListener, worker_socket


async def accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection accepted by an asyncio server on ``sock``."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock, backlog=ACCEPT_BATCH)
    host, port = sock.getsockname()[:2]
    try:
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, timeout=30)  # a hang guard only
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_worker_accepts_connections_with_nagle_off() -> None:
    supervisor = worker_socket("127.0.0.1", 0, 16)
    try:
        sent = pickle.loads(ForkingPickler.dumps(supervisor))  # as the supervisor hands it to a worker
        assert isinstance(sent, SharedListener)
        assert asyncio.run(accepted_nodelay(sent)) != 0
    finally:
        supervisor.close()


def test_the_audit_api_socket_accepts_connections_with_nagle_off() -> None:
    sock = listen("127.0.0.1", 0)
    assert asyncio.run(accepted_nodelay(sock)) != 0
