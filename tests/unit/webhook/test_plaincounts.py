"""Without an OTLP endpoint, an admission's measurements are plain counts (``webhook.plaincounts``) that
``/metrics`` renders as the SDK would, and no span is built when no span is exported."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Tracer
from starlette.testclient import TestClient

from tests.unit.webhook.builders import engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.prometheus import Family, families, parse_samples
from webhook.recorder import MemoryRecorder
from webhook.telemetry import Telemetry, build_telemetry

# Every kind of instrument on the request path, with values on bucket bounds and above every bound.
MEASUREMENTS: list[tuple[str, str, float, dict[str, str]]] = [
    ("add", "requests", 1, {"verdict": "allow", "operation": "CREATE"}),
    ("add", "requests", 1, {"operation": "CREATE", "verdict": "allow"}),  # same series, other order
    ("add", "requests", 1, {"verdict": "deny", "operation": "UPDATE"}),
    ("add", "requests", -1, {"verdict": "deny", "operation": "UPDATE"}),  # a counter never goes back
    ("add", "in_flight", 1, {}),
    ("add", "in_flight", 1, {}),
    ("add", "in_flight", -1, {}),
    ("observe", "request_duration", 0.001, {"verdict": "allow"}),  # on a bound: that bound's bucket
    ("observe", "request_duration", 0.0002, {"verdict": "allow"}),
    ("observe", "request_duration", 20.0, {"verdict": "deny"}),  # above every bound
    ("observe", "evaluation_duration", 0.003, {}),
]


def _apply(telemetry: Telemetry) -> None:
    for how, name, value, attributes in MEASUREMENTS:
        getattr(telemetry, how)(name, value, **attributes)


def _by_name(found: list[Family]) -> dict[str, Family]:
    return {f.name: f for f in found}


def _series(family: Family) -> dict[tuple[tuple[str, str], ...], tuple[Any, ...]]:
    return {
        tuple(sorted(p.labels.items())): (p.value, p.bounds, p.buckets, round(float(p.sum), 9), p.count)
        for p in family.points
    }


def test_the_plain_counts_render_what_the_sdk_renders(collector: tuple[str, list[str]]) -> None:
    plain = build_telemetry({})
    sdk = build_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": collector[0]})  # the SDK's instruments record
    try:
        _apply(plain)
        _apply(sdk)
        mine, theirs = _by_name(plain.families()), _by_name(sdk.families())
        assert (
            set(mine)
            == set(theirs)
            == {
                "policyengine_admission_requests",
                "policyengine_requests_in_flight",
                "policyengine_request_duration_seconds",
                "policyengine_evaluation_duration_seconds",
            }
        )
        for name, family in mine.items():
            other = theirs[name]
            assert (family.kind, family.description) == (other.kind, other.description), name
            assert _series(family) == _series(other), name
        text = plain.prometheus_text()
        assert text == sdk.prometheus_text()
        samples = {(n, tuple(sorted(labels.items()))): v for n, labels, v in parse_samples(text)}
        assert samples["policyengine_requests_in_flight", ()] == 1
        assert (
            samples["policyengine_admission_requests_total", (("operation", "CREATE"), ("verdict", "allow"))]
            == 2
        )
    finally:
        plain.shutdown()
        sdk.shutdown()


def test_admissions_are_counted_without_the_sdk(policy_dir: Path) -> None:
    telemetry = build_telemetry({})
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(
        policies=policies, telemetry=telemetry, recorder=MemoryRecorder(), reload_interval=None
    )
    with TestClient(create_app(services)) as client:
        for _ in range(3):
            assert client.post("/validate", json=review(pod())).status_code == 200
    # The SDK's reader holds only what is read at collection (gauges, tallies): no measurement per request.
    recorded = {f.name for f in families(telemetry.reader.get_metrics_data()) if f.points}
    assert not recorded & {
        "policyengine_admission_requests",
        "policyengine_requests_in_flight",
        "policyengine_request_duration_seconds",
        "policyengine_evaluation_duration_seconds",
        "policyengine_audit_append_duration_seconds",
    }
    samples = list(parse_samples(telemetry.prometheus_text()))
    total = sum(v for name, _, v in samples if name == "policyengine_admission_requests_total")
    durations = [v for name, _, v in samples if name == "policyengine_request_duration_seconds_count"]
    audits = [v for name, _, v in samples if name == "policyengine_audit_append_duration_seconds_count"]
    in_flight = [v for name, _, v in samples if name == "policyengine_requests_in_flight"]
    assert (total, sum(durations), audits, in_flight) == (3, 3, [3], [0])
    telemetry.shutdown()


class CountingTracer(Tracer):
    """The SDK's tracer, counting the spans asked of it."""

    def __init__(self, inner: Tracer) -> None:
        self.inner = inner
        self.started = 0

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        self.started += 1
        return self.inner.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> AbstractContextManager[Span]:  # type: ignore[override]
        self.started += 1
        return self.inner.start_as_current_span(*args, **kwargs)


def _admit_once(policy_dir: Path, telemetry: Telemetry) -> CountingTracer:
    counting = CountingTracer(telemetry.tracer)
    telemetry.tracer = counting
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        assert client.post("/validate", json=review(pod())).status_code == 200
    return counting


def test_no_span_is_built_when_no_span_is_exported(policy_dir: Path) -> None:
    assert _admit_once(policy_dir, build_telemetry({})).started == 0


def test_spans_are_built_and_exported_when_an_exporter_is_there(policy_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    counting = _admit_once(policy_dir, build_telemetry({}, span_exporter=exporter))
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert counting.started == 2 and names == ["admission", "audit.append"]
