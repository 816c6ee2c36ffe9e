"""The console's guards: security headers on every page (CSP without inline scripts) and a per-token
rate limit on the queries that cost the most (searches, downloads, summaries)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from audit import errors

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_CLIENTS = 1024  # token buckets kept; the least recently used one is dropped past this


class RateLimit:
    """A token bucket per bearer token: ``capacity`` units, refilled at ``rate`` units a second. Each
    expensive query costs units; one that finds the bucket short is refused with 429 and Retry-After.
    Buckets are keyed by a hash of the token, so the token itself is not kept."""

    def __init__(
        self, capacity: float = 60.0, rate: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity, self.rate, self._clock = capacity, rate, clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0

    def charge(self, request: Request, cost: float) -> Response | None:
        """None when the query may run (its cost is taken), else the 429 response to send."""
        header = request.headers.get("authorization", "")
        key = hashlib.sha256(header.encode()).digest()
        with self._lock:
            now = self._clock()
            level, at = self._buckets.pop(key, (self.capacity, now))
            level = min(self.capacity, level + (now - at) * self.rate)
            if level >= cost:
                self._keep(key, level - cost, now)
                return None
            self._keep(key, level, now)
            self.refused += 1
            wait = max(1, int((cost - level) / self.rate + 0.999))
        return JSONResponse(
            {"error": f"too many expensive queries; retry in {wait} s", "code": errors.BUSY},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    def _keep(self, key: bytes, level: float, now: float) -> None:
        self._buckets[key] = (level, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)


def secured(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
