"""Counters, up-down counters and histograms kept as plain counts, read when ``/metrics`` is collected.

Every admission records a handful of measurements (the request, its verdict, its durations, the
in-flight count). Through the OpenTelemetry SDK each costs several microseconds (a measurement object,
its attributes checked and hashed, a view look-up, an aggregation lock); here it is a dictionary
look-up and an addition under one lock. ``family`` gives the series the SDK's reader would have
rendered (same names, kinds, labels, explicit buckets: a value on a bound counts in that bound's
bucket), so ``/metrics`` and the merge across workers are unchanged. When metrics are exported over
OTLP, the SDK instruments record instead (``webhook.telemetry``), so the collector receives them.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Hashable, Mapping
from typing import Any

from webhook.prometheus import Family, Point

# An attribute set as a key: the same labels given in another order are the same series.
Key = frozenset[tuple[str, Any]]


class PlainSum:
    """A counter (``monotonic``) or an up-down counter: one running total per attribute set."""

    def __init__(self, name: str, description: str, *, monotonic: bool) -> None:
        self.name = name
        self.description = description
        self.monotonic = monotonic
        self._totals: dict[Key, float | int] = {}  # grows with the distinct attribute sets, as the SDK's
        self._lock = threading.Lock()  # some are added to from other threads (reservations, relists)

    def add(self, amount: float | int, attributes: Mapping[str, Any] | None = None) -> None:
        if self.monotonic and amount < 0:
            return  # as the SDK: a counter only grows (it drops a negative add with a warning)
        key: Key = frozenset(attributes.items()) if attributes else frozenset()
        with self._lock:
            self._totals[key] = self._totals.get(key, 0) + amount

    def family(self) -> Family | None:
        """The series as /metrics renders them; None before anything is added (as the SDK omits it)."""
        with self._lock:
            points = [Point(_labels(key), value) for key, value in self._totals.items()]
        if not points:
            return None
        return Family(self.name, self.description, "counter" if self.monotonic else "gauge", points)


class _Series:
    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0
        self.count = 0


class PlainHistogram:
    """A histogram over explicit ``bounds``: per attribute set, the count in each bucket, sum and count."""

    def __init__(self, name: str, description: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.description = description
        self.bounds = bounds
        self._series: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()

    def record(self, value: float, attributes: Mapping[str, Any] | None = None) -> None:
        key: Key = frozenset(attributes.items()) if attributes else frozenset()
        with self._lock:
            self._add(key, value)

    def _add(self, key: Hashable, value: float) -> None:
        """One value in the series of ``key``; the caller holds the lock."""
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = _Series(len(self.bounds) + 1)
        found.buckets[bisect_left(self.bounds, value)] += 1
        found.total += value
        found.count += 1

    def _labels_of(self, key: Any) -> dict[str, str]:
        """The labels of a series' key as /metrics shows them."""
        return _labels(key)

    def family(self) -> Family | None:
        with self._lock:
            points = [
                Point(
                    self._labels_of(key),
                    bounds=self.bounds,
                    buckets=tuple(s.buckets),
                    sum=s.total,
                    count=s.count,
                )
                for key, s in self._series.items()
            ]
        return Family(self.name, self.description, "histogram", points) if points else None


def _labels(key: Key) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(key)}
