"""Each policy's evaluation time is kept as plain counts (``webhook.policytimes``), not recorded through
the OpenTelemetry SDK once per policy per admission, and ``/metrics`` shows the histogram the SDK would:
the same buckets (a value on a bound counts in that bound's bucket), sum and count, per policy."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from policyengine.loader import parse_text
from policyengine.model import Policy
from policyengine.policyset import build_policy_set
from tests.unit.webhook.builders import engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.prometheus import Family, parse_samples
from webhook.telemetry import Telemetry, build_telemetry

NAME = "policyengine_policy_evaluation_duration_seconds"


def policies_named(names: list[str]) -> list[Policy]:
    text = "---\n".join(
        f"apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {{name: {n}}}\n"
        "spec: {validations: [{expression: 'true'}]}\n"
        for n in names
    )
    return list(build_policy_set(parse_text(text, "p.yaml")).policies)


# (policy, start ns, end ns): 1 ms exactly (on a bound), 0.2 ms, 30 ms, 20 s (above every bound)
SPANS = [("a", 0, 1_000_000), ("a", 0, 200_000), ("b", 5, 30_000_005), ("b", 0, 20_000_000_000)]


def _histogram(telemetry: Telemetry) -> Family:
    (family,) = [f for f in telemetry.families() if f.name == NAME]
    return family


def test_the_plain_histogram_is_the_sdks(collector: tuple[str, list[str]]) -> None:
    policies = {p.name: p for p in policies_named(["a", "b"])}
    spans = [(policies[n], start, end) for n, start, end in SPANS]
    plain = build_telemetry({})
    # With an OTLP endpoint the SDK instrument records (the collector must receive the histogram too).
    sdk = build_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": collector[0]})
    try:
        assert plain.policy_durations is not None and "policy_duration" not in plain.instruments
        assert sdk.policy_durations is None and "policy_duration" in sdk.instruments
        plain.record_policies(spans[:2])  # two admissions' worth
        plain.record_policies(spans[2:])
        sdk.record_policies(spans)
        mine, theirs = _histogram(plain), _histogram(sdk)
        assert mine.kind == theirs.kind == "histogram"
        assert mine.description == theirs.description
        by_policy = {p.labels["policy"]: p for p in theirs.points}
        assert len(mine.points) == 2
        for point in mine.points:
            other = by_policy[point.labels["policy"]]
            assert (point.bounds, point.buckets, point.count) == (other.bounds, other.buckets, other.count)
            assert abs(point.sum - other.sum) < 1e-9
        assert mine.points[0].buckets[1] == 1  # 1 ms exactly: in the le="0.001" bucket
        assert mine.points[1].buckets[-1] == 1  # 20 s: above every bound
    finally:
        plain.shutdown()
        sdk.shutdown()


def test_nothing_recorded_nothing_shown_then_each_admission_counts(policy_dir: Path) -> None:
    telemetry = build_telemetry({})
    assert all(f.name != NAME for f in telemetry.families())
    assert NAME not in telemetry.prometheus_text()
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        for _ in range(3):
            assert client.post("/validate", json=review(pod())).status_code == 200
    samples = list(parse_samples(telemetry.prometheus_text()))
    counts = {labels["policy"]: v for name, labels, v in samples if name == f"{NAME}_count"}
    infinite = {
        labels["policy"]: v
        for name, labels, v in samples
        if name == f"{NAME}_bucket" and labels.get("le") == "+Inf"
    }
    assert counts == infinite == {"no-latest-tag": 3, "team-label": 3}
    # One family of that name in the exposition (the SDK instrument is not made alongside).
    assert telemetry.prometheus_text().count(f"# TYPE {NAME} histogram") == 1
    telemetry.shutdown()
