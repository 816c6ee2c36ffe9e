"""Overload reported once per interval: a server refusing thousands of connections or requests a second
writes one warning line per interval (with how many it refused since the last line), not one per refusal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from webhook.logs import get_logger

REPORT_INTERVAL = 10.0  # seconds between two lines about the same overload


class OverloadLog:
    """A warning that repeats at most once per ``interval``; each line counts the occurrences it stands for."""

    def __init__(
        self,
        message: str,
        *,
        interval: float = REPORT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.interval = interval
        self.fields = fields or {}
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0
        self._last: float | None = None
        self.total = 0

    def hit(self, **extra: Any) -> bool:
        """Count one occurrence; log it (with those held back since the last line) when the interval
        has passed. Returns whether a line was written."""
        with self._lock:
            self.total += 1
            self._pending += 1
            now = self._clock()
            if self._last is not None and now - self._last < self.interval:
                return False
            count, self._pending, self._last = self._pending, 0, now
        fields = {**self.fields, **extra, "occurrences": count, "report_interval_s": self.interval}
        get_logger().warning(self.message, extra=fields)
        return True
