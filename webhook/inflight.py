"""Admission control for reviews: at most ``max_requests`` in flight, holding at most ``max_bytes`` of
request bodies between them; one over either cap is answered at once (503) instead of queued.

A review's memory grows with its body (parsing and the workload view hold tens of times its size), so
bytes are the measure of what requests may hold. A request's bytes stay counted until the last thread
working on it has finished: a parse or an evaluation that outlives its request's deadline (it cannot be
interrupted) still holds its memory, so it still holds its share.
"""

from __future__ import annotations

import threading
from typing import Any

DEFAULT_MAX_IN_FLIGHT = 128  # bodies are capped by bytes; this bounds the queue of small ones


class InFlight:
    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def enter(self, size: int) -> Ticket | None:
        """A ticket for a request of ``size`` body bytes, or None when it would go over a cap."""
        with self._lock:
            if self.requests + 1 > self.max_requests or self.bytes + size > self.max_bytes:
                return None
            self.requests += 1
            self.bytes += size
        return Ticket(self, size)

    def _leave(self, size: int) -> None:
        with self._lock:
            self.requests -= 1
            self.bytes -= size


class Ticket:
    """One request's share; returned when the handler and every job it handed to a thread are done."""

    def __init__(self, gate: InFlight, size: int) -> None:
        self.gate = gate
        self.size = size
        self._holders = 1  # the handler itself
        self._lock = threading.Lock()

    def hold(self, job: Any) -> None:
        """Keep the share until ``job`` (an asyncio or concurrent future) is done."""
        with self._lock:
            self._holders += 1
        job.add_done_callback(lambda _: self._drop())

    def release(self) -> None:
        """The handler is done (its background jobs may not be)."""
        self._drop()

    def _drop(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self.gate._leave(self.size)


def declared_size(content_length: str | None, max_body: int) -> int:
    """What a request will hold, from its Content-Length; a chunked or unparseable one counts as the
    largest body allowed (it is refused with 413 past that anyway)."""
    if content_length is None:
        return max_body
    try:
        size = int(content_length)
    except ValueError:
        return max_body
    return min(max(size, 0), max_body)
