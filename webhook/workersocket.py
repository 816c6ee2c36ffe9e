"""The listening socket of ``serve --workers N``: one, the supervisor's, that every worker accepts on one
connection at a time.

asyncio accepts up to its ``backlog`` argument of connections each time the socket is readable, and
uvicorn passes its listen backlog (2048): on a socket shared by the workers, the worker woken first
takes every connection waiting and keeps it for its keep-alive life. kube-apiserver and load generators
open their connections at once, so one worker served 15 connections of 16 while the other idled. The
workers therefore run with an accept batch of one (``ACCEPT_BATCH``): a busy worker is back at accept
later than an idle one, which takes the next connection. The socket each worker receives keeps the
supervisor's queue length when asyncio calls ``listen`` with that batch size. Connections stay queued
on the one socket while a worker is killed or restarted, and are accepted by the others (a socket per
worker with SO_REUSEPORT would reset those queued on a dying worker, and refuse connections while
every worker restarts).
"""

from __future__ import annotations

import inspect
import logging
import socket
from multiprocessing.reduction import DupFd
from typing import Any

ACCEPT_BATCH = 1  # connections a worker accepts per wake-up (asyncio's backlog argument)


class WorkerSocket(socket.socket):
    """The supervisor's listening socket; sent to a worker, it is a ``SharedListener`` on the same
    queue (the descriptor duplicated, as multiprocessing sends sockets)."""

    queue: int = 2048

    def __reduce__(self) -> tuple[Any, ...]:
        return _shared_listener, (DupFd(self.fileno()), self.family, self.type, self.proto, self.queue)


class SharedListener(socket.socket):
    """A worker's handle on the supervisor's socket: ``listen`` keeps the supervisor's queue length."""

    queue: int = 2048

    def listen(self, backlog: int = 0) -> None:
        super().listen(max(backlog, self.queue))


def worker_socket(host: str, port: int, queue: int) -> WorkerSocket:
    """The supervisor's listening socket (raises OSError when the address is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio switches Nagle's algorithm off only on connections of that protocol,
    # and accepted connections take the listener's; with it on, a response sent as two TLS records
    # waits for the client's delayed ACK of the first (~40 ms on Linux).
    sock = WorkerSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(queue)
    except OSError:
        sock.close()
        raise
    sock.queue = queue
    sock.set_inheritable(True)
    return sock


def _shared_listener(fd: Any, family: int, kind: int, proto: int, queue: int) -> SharedListener:
    sock = SharedListener(family, kind, proto, fileno=fd.detach())
    sock.queue = queue
    return sock


def run_workers(config: Any, server: Any) -> bool:
    """Run ``server`` in ``config.workers`` processes under uvicorn's supervisor, on one socket they
    accept from one connection at a time. Whether it started."""
    from uvicorn.supervisors import Multiprocess  # the supervisor only: not imported by the workers

    try:  # the workers take its connections one at a time: spread over them
        sock = worker_socket(config.host, config.port, config.backlog)
        config.backlog = ACCEPT_BATCH
    except OSError as err:
        logging.getLogger("uvicorn.error").error("cannot listen on %s:%s: %s", config.host, config.port, err)
        return False
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.50
        supervisor = Multiprocess(config, target=server.run, sockets=[sock])  # type: ignore[call-arg]
    else:
        supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    return True
