"""OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set: spans and metrics reach a collector over HTTP; a
span per policy when asked for; attribute sets reused on the request path."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from tests.unit.webhook.builders import engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.prometheus import parse_samples, render
from webhook.telemetry import build_telemetry


def test_otlp_export_sends_spans_and_metrics(collector: tuple[str, list[str]], policy_dir: Path) -> None:
    endpoint, received = collector
    telemetry = build_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        assert client.post("/validate", json=review(pod())).status_code == 200
    telemetry.shutdown()  # flushes the batch span processor and the periodic metric reader
    assert "/v1/traces" in received and "/v1/metrics" in received


def test_no_endpoint_no_exporter_and_empty_data_renders_empty() -> None:
    telemetry = build_telemetry({})
    assert "policyengine_" not in telemetry.prometheus_text()  # nothing recorded yet
    assert render(None) == ""
    telemetry.shutdown()


def test_a_span_per_policy_when_asked_for(policy_dir: Path, spans: InMemorySpanExporter) -> None:
    telemetry = build_telemetry({"POLICYENGINE_TRACE_POLICIES": "1"}, span_exporter=spans)
    assert telemetry.policy_spans
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        assert client.post("/validate", json=review(pod(image="x:latest"))).status_code == 200
    finished = {s.name: s for s in spans.get_finished_spans()}
    root = finished["admission"]
    assert root.attributes is not None and root.attributes["policyengine.verdict"] == "denied"
    for name in ("policy no-latest-tag", "policy team-label", "audit.append"):
        span = finished[name]
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id
        assert (
            root.start_time is not None and span.start_time is not None and span.start_time >= root.start_time
        )
    policy = finished["policy no-latest-tag"]
    assert policy.attributes is not None and list(policy.attributes["policyengine.outcomes"]) == ["fail"]
    # The outcomes are on the admission span as well.
    assert list(root.attributes["policyengine.policies_failed"]) == ["no-latest-tag", "team-label"]
    telemetry.shutdown()


def test_no_span_per_policy_unless_asked_for_and_each_policy_still_timed(
    policy_dir: Path, spans: InMemorySpanExporter
) -> None:
    telemetry = build_telemetry({"POLICYENGINE_TRACE_POLICIES": "0"}, span_exporter=spans)
    assert not telemetry.policy_spans
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        for _ in range(2):
            assert client.post("/validate", json=review(pod(image="x:latest"))).status_code == 200
    assert sorted(s.name for s in spans.get_finished_spans()) == [
        "admission",
        "admission",
        "audit.append",
        "audit.append",
    ]
    counts = {
        labels["policy"]: value
        for name, labels, value in parse_samples(telemetry.prometheus_text())
        if name == "policyengine_policy_evaluation_duration_seconds_count"
    }
    assert counts == {"no-latest-tag": 2, "team-label": 2}
    telemetry.shutdown()


def test_attribute_sets_are_made_once_per_distinct_value() -> None:
    telemetry = build_telemetry({})
    keys = ("policy", "action", "outcome")
    first = telemetry.bound(keys, ("p", "deny", "fail"))
    assert first == {"policy": "p", "action": "deny", "outcome": "fail"}
    assert telemetry.bound(keys, ("p", "deny", "fail")) is first
    assert telemetry.bound(keys, ("p", "deny", "pass")) == {
        "policy": "p",
        "action": "deny",
        "outcome": "pass",
    }
    telemetry.shutdown()


def test_spans_are_recorded_only_when_something_exports_them() -> None:
    assert build_telemetry({}).tracer.start_span("admission").is_recording() is False
    exported = build_telemetry({}, span_exporter=InMemorySpanExporter())
    assert exported.tracer.start_span("admission").is_recording() is True
    otlp = build_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert otlp.tracer.start_span("admission").is_recording() is True
    finally:
        otlp.shutdown()


def test_decisions_are_counted_by_policy_action_and_outcome_at_collection() -> None:
    telemetry = build_telemetry({})
    for values in (("p", "deny", "fail"), ("p", "deny", "fail"), ("q", "warn", "pass")):
        telemetry.count("decisions", values)
    samples = {
        (labels["policy"], labels["action"], labels["outcome"]): value
        for name, labels, value in parse_samples(telemetry.prometheus_text())
        if name == "policyengine_decisions_total"
    }
    assert samples == {("p", "deny", "fail"): 2.0, ("q", "warn", "pass"): 1.0}
