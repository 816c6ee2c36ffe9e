"""Each policy's evaluation time, as the histogram ``policyengine_policy_evaluation_duration_seconds``
by ``policy``, kept as plain counts and read when ``/metrics`` is collected.

An admission evaluates every policy of the set and records one duration per policy. Through the
OpenTelemetry SDK each record costs several microseconds (a measurement object, its attributes checked
and hashed, a view look-up, a lock): with the bundled packs, more than evaluating a small request. Here a
record is one bisect and three additions, for all of a request's policies under one lock. The buckets
are the SDK's explicit ones (a value on a bound counts in that bound's bucket), so ``/metrics`` shows the
same series. When metrics are also exported over OTLP, the SDK instrument records them instead
(``webhook.telemetry``), so the collector receives them too.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable

from policyengine.model import Policy
from webhook.prometheus import Family, Point


class _Series:
    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0
        self.count = 0


class PolicyDurations:
    """Per-policy duration histograms; ``record`` runs on the event loop, ``family`` in any thread."""

    def __init__(self, name: str, description: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.description = description
        self.bounds = bounds
        self._series: dict[str, _Series] = {}  # grows with the policy names served, as the SDK's does
        self._lock = threading.Lock()  # a collection never sees a record half made

    def record(self, spans: Iterable[tuple[Policy, int, int]]) -> None:
        """One duration per (policy, start ns, end ns)."""
        bounds, series, size = self.bounds, self._series, len(self.bounds) + 1
        with self._lock:
            for policy, start, end in spans:
                seconds = (end - start) / 1e9
                found = series.get(policy.name)
                if found is None:
                    found = series[policy.name] = _Series(size)
                found.buckets[bisect_left(bounds, seconds)] += 1
                found.total += seconds
                found.count += 1

    def family(self) -> Family | None:
        """The histogram as ``/metrics`` renders it; None before anything is recorded (as the SDK omits
        an instrument without measurements)."""
        with self._lock:
            points = [
                Point(
                    {"policy": name}, bounds=self.bounds, buckets=tuple(s.buckets), sum=s.total, count=s.count
                )
                for name, s in self._series.items()
            ]
        return Family(self.name, self.description, "histogram", points) if points else None
