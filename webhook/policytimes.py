"""Each policy's evaluation time, as the histogram ``policyengine_policy_evaluation_duration_seconds``
by ``policy``, kept as plain counts and read when ``/metrics`` is collected.

An admission evaluates every policy of the set and records one duration per policy. Through the
OpenTelemetry SDK each record costs several microseconds (a measurement object, its attributes checked
and hashed, a view look-up, a lock): with the bundled packs, more than evaluating a small request. Here a
record is one bisect and three additions, for all of a request's policies under one lock
(``webhook.plaincounts.PlainHistogram``, keyed by the policy's name). The buckets
are the SDK's explicit ones (a value on a bound counts in that bound's bucket), so ``/metrics`` shows the
same series. When metrics are also exported over OTLP, the SDK instrument records them instead
(``webhook.telemetry``), so the collector receives them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from policyengine.model import Policy
from webhook.plaincounts import PlainHistogram


class PolicyDurations(PlainHistogram):
    """Per-policy duration histograms; ``record_spans`` runs on the event loop, ``family`` in any thread.
    The series grow with the policy names served, as the SDK's do."""

    def record_spans(self, spans: Iterable[tuple[Policy, int, int]]) -> None:
        """One duration per (policy, start ns, end ns)."""
        with self._lock:
            for policy, start, end in spans:
                self._add(policy.name, (end - start) / 1e9)

    def _labels_of(self, key: Any) -> dict[str, str]:
        return {"policy": key}
