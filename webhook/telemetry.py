"""Traces and metrics through the OpenTelemetry SDK, built per app (never the global providers).

A trace per admission request (``admission``) with the policy outcomes as its attributes and an event
per policy that did not pass, and a child span for the audit append. A child span per policy evaluated
(timed by the engine's ``observe`` hook) costs more than the evaluation of a small request, so it is
made only when asked for (``POLICYENGINE_TRACE_POLICIES=1``) and the trace is sampled. Metrics are read for ``/metrics`` by an in-memory reader
and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set in the environment mapping given, also exported by OTLP
over HTTP together with the spans. Unless metrics are exported over OTLP, the counters and histograms
are kept as plain counts (``webhook.plaincounts``; each policy's evaluation time: ``webhook.policytimes``)
that /metrics renders with the SDK's gauges, and no span is built when no span is exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import INVALID_SPAN, Span, Tracer

from policyengine.model import Policy
from webhook import prometheus
from webhook.plaincounts import PlainHistogram, PlainSum
from webhook.policytimes import PolicyDurations

SERVICE_NAME = "policyengine-webhook"
TRACE_POLICIES = "POLICYENGINE_TRACE_POLICIES"  # environment: a span per policy in sampled traces
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# What ``Telemetry.span`` gives when no span is exported (reentrant: nullcontext keeps no state).
_UNTRACED: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)

# Observable gauges read these at collection time: name -> () -> [(value, attributes)].
GaugeSource = Callable[[], Iterable[tuple[float, Mapping[str, str]]]]


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    tracer: Tracer
    instruments: dict[str, Any]
    gauges: dict[str, GaugeSource] = field(default_factory=dict)
    policy_spans: bool = False  # a child span per policy (in sampled traces)
    # Whether spans go anywhere: when none is exported, ``span`` builds none (nor their attributes).
    traced: bool = True
    # The /metrics text when it is not this process's alone (serve --workers N: webhook.workermetrics).
    exposition: Callable[[], str] | None = None
    # Attribute sets built once per distinct value and reused: the request path records dozens per request.
    _bound: dict[tuple[str, ...], Mapping[str, str]] = field(default_factory=dict)
    # Counters kept as plain counts and read at collection (name -> attribute values -> count): a
    # request adds one per policy result, and an SDK counter's add costs more than evaluating a policy.
    tallies: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)
    # Each policy's evaluation time as plain counts (``webhook.policytimes``); None when metrics are
    # exported over OTLP, where the SDK instrument ``policy_duration`` records it.
    policy_durations: PolicyDurations | None = None

    def add(self, name: str, value: float, **attributes: str) -> None:
        self.instruments[name].add(value, attributes)

    def observe(self, name: str, value: float, **attributes: str) -> None:
        self.instruments[name].record(value, attributes)

    def span(
        self, name: str, attributes: Callable[[], Mapping[str, Any]] | None = None
    ) -> AbstractContextManager[Span]:
        """``tracer.start_as_current_span(name, attributes=attributes())``, or, when no span is exported,
        a span that records nothing and costs nothing (an SDK span not sampled still costs microseconds)."""
        if not self.traced:
            return _UNTRACED
        return self.tracer.start_as_current_span(
            name, attributes=None if attributes is None else attributes()
        )

    def count(self, name: str, values: tuple[str, ...]) -> None:
        """One more of the tally ``name`` for the attribute ``values`` (called on the event loop only)."""
        tally = self.tallies[name]
        tally[values] = tally.get(values, 0) + 1

    def count_all(self, name: str, values: Iterable[tuple[str, ...]]) -> None:
        """One more of the tally ``name`` for each of ``values`` (an admission's policy results)."""
        tally = self.tallies[name]
        for key in values:
            tally[key] = tally.get(key, 0) + 1

    def bound(self, keys: tuple[str, ...], values: tuple[str, ...]) -> Mapping[str, str]:
        """The attribute set ``keys`` = ``values``, made once (the cache grows with the distinct values
        seen: policy names, actions and outcomes, a set the policy files bound)."""
        found = self._bound.get(keys + values)
        if found is None:
            found = self._bound[keys + values] = dict(zip(keys, values, strict=True))
        return found

    def record_policies(self, spans: Iterable[tuple[Policy, int, int]]) -> None:
        """Each policy's duration from (policy, start ns, end ns), one admission's worth."""
        if self.policy_durations is not None:
            self.policy_durations.record_spans(spans)
            return
        durations, keys = self.instruments["policy_duration"], ("policy",)
        for policy, start, end in spans:
            durations.record((end - start) / 1e9, self.bound(keys, (policy.name,)))

    def families(self) -> list[prometheus.Family]:
        """This process's metrics as /metrics families: the SDK's, then the plain counts."""
        found = prometheus.families(self.reader.get_metrics_data())
        plain = [i.family() for i in self.instruments.values() if isinstance(i, PlainSum | PlainHistogram)]
        if self.policy_durations is not None:
            plain.append(self.policy_durations.family())
        return found + [f for f in plain if f is not None]

    def prometheus_text(self) -> str:
        if self.exposition is not None:
            return self.exposition()
        return prometheus.render_families(self.families())

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


# The instruments, in the order they are made: key -> (kind, metric name, description). A "tally" is
# a counter counted in Telemetry.tallies and read at collection.
# Histograms are durations in seconds, bucketed by LATENCY_BUCKETS.
_INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "requests": (
        "counter",
        "policyengine_admission_requests",
        "Admission requests answered, by verdict.",
    ),
    "decisions": (
        "tally",
        "policyengine_decisions",
        "Policy results of admission decisions (policy, action, outcome).",
    ),
    "bad_requests": (
        "counter",
        "policyengine_bad_requests",
        "Requests refused before evaluation, by error code.",
    ),
    "unauthenticated": (
        "counter",
        "policyengine_unauthenticated_requests",
        "Requests to /validate refused for want of a client certificate or token, by reason.",
    ),
    "timeouts": (
        "counter",
        "policyengine_evaluation_timeouts",
        "Evaluations over the time budget (failurePolicy applied).",
    ),
    "moved_to_pool": (
        "counter",
        "policyengine_evaluations_moved_to_pool",
        "Evaluations begun on the event loop that outran their slice and were made in the pool.",
    ),
    "reloads": ("counter", "policyengine_reloads", "Policy set reloads, by result."),
    "reload_failures": (
        "counter",
        "policyengine_reload_failures",
        "Policy set reloads that failed (the last good set is kept).",
    ),
    "shrinks": (
        "counter",
        "policyengine_policy_set_shrinks",
        "Reloads whose new set lost policies, by result (held, applied, refused).",
    ),
    "relists": (
        "counter",
        "policyengine_inventory_relists",
        "Full relists of a watched resource, by resource and reason.",
    ),
    "reservations": (
        "counter",
        "policyengine_gpu_reservations",
        "GPU reservations by result: made, refused (the pool had no room), full (the pool's cap), released.",
    ),
    "reservation_store_events": (
        "counter",
        "policyengine_gpu_reservation_store_events",
        "Reservation store contention and failures, by event: conflict, retry, error.",
    ),
    "in_flight": (
        "up_down_counter",
        "policyengine_requests_in_flight",
        "Admission requests being answered.",
    ),
    "request_duration": (
        "histogram",
        "policyengine_request_duration_seconds",
        "Time to answer an admission request.",
    ),
    "evaluation_duration": (
        "histogram",
        "policyengine_evaluation_duration_seconds",
        "Time to evaluate the policy set on one request.",
    ),
    "policy_duration": (
        "histogram",
        "policyengine_policy_evaluation_duration_seconds",
        "Time to evaluate one policy on one request.",
    ),
    "audit_duration": (
        "histogram",
        "policyengine_audit_append_duration_seconds",
        "Time to record one decision.",
    ),
}

# The attribute names of each tally's values.
_TALLY_KEYS: dict[str, tuple[str, ...]] = {"decisions": ("policy", "action", "outcome")}

# Observable gauges: metric name -> description. Their values come from Telemetry.gauges at collection.
_GAUGES: dict[str, str] = {
    "policyengine_policy_set_info": "The policy set being served (value 1), by digest.",
    "policyengine_policies_loaded": "Policies in the set being served.",
    "policyengine_policies_unconfigured": "1 for each policy served without the GovernanceConfig facts it needs "
    "(not evaluated), by policy and the keys it needs.",
    "policyengine_inventory_synced": "1 when the cluster inventory has synced, by resource.",
    "policyengine_inventory_objects": "Objects in the cluster inventory, by resource.",
    "policyengine_audit_queue_depth": "Decisions waiting to be made durable in the audit log.",
    "policyengine_audit_failures": "Decisions the audit log could not record since start.",
    "policyengine_audit_healthy": "1 while the audit log takes entries.",
    "policyengine_violations": "Failed results of the last background scan, by policy, action and namespace "
    "(namespaces beyond the cap summed as _other; cluster-scoped objects as _cluster).",
    "policyengine_background_scan_seconds": "Duration of the last background scan.",
    "policyengine_background_objects": "Objects evaluated by the last background scan.",
    "policyengine_tls_certificate_expiry_seconds": "Seconds until the notAfter of the serving certificate.",
    "policyengine_tls_certificate_reload_failures": "Changed certificate files not served since start "
    "(the previous certificate was kept).",
}


def build_telemetry(
    env: Mapping[str, str],
    *,
    span_exporter: SpanExporter | None = None,
    policy_spans: bool | None = None,
) -> Telemetry:
    """Providers, instruments and exporters. ``span_exporter`` (tests: the SDK's InMemorySpanExporter)
    is attached synchronously; OTLP is added when ``env`` names an endpoint. ``policy_spans`` (default:
    ``POLICYENGINE_TRACE_POLICIES`` in ``env``) asks for a span per policy in sampled traces."""
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
    # Spans nothing exports are not recorded at all: building one per admission is not free.
    exported = span_exporter is not None or bool(endpoint)
    tracer_provider = TracerProvider(resource=resource, sampler=None if exported else ALWAYS_OFF)
    if span_exporter is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    reader = InMemoryMetricReader()
    readers: list[MetricReader] = [reader]
    if endpoint:
        readers.append(_otlp(tracer_provider, endpoint))
    # No exemplars: /metrics does not render them, and offering each measurement to a reservoir (with a
    # look-up of the current span) is a large share of recording it.
    meter_provider = MeterProvider(
        metric_readers=readers, resource=resource, exemplar_filter=AlwaysOffExemplarFilter()
    )
    meter = meter_provider.get_meter("policyengine.webhook")
    durations = None
    if not endpoint:  # /metrics only: the per-policy histogram as plain counts (webhook.policytimes)
        _, name, description = _INSTRUMENTS["policy_duration"]
        durations = PolicyDurations(name, description, LATENCY_BUCKETS)
    # /metrics only: plain counts (webhook.plaincounts); exported over OTLP: the SDK's instruments.
    made = _instrument if endpoint else _plain
    instruments = {
        key: made(meter, *spec)
        for key, spec in _INSTRUMENTS.items()
        if spec[0] != "tally" and not (key == "policy_duration" and durations is not None)
    }
    gauges, tallies = _observables(meter)  # made after the instruments, as they always were
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        reader=reader,
        tracer=tracer_provider.get_tracer("policyengine.webhook"),
        instruments=instruments,
        gauges=gauges,
        tallies=tallies,
        policy_spans=_asked(env) if policy_spans is None else policy_spans,
        traced=exported,
        policy_durations=durations,
    )


def _observables(meter: Meter) -> tuple[dict[str, GaugeSource], dict[str, dict[tuple[str, ...], int]]]:
    """The instruments read at collection: the gauges' sources (filled by the app) and the tallies."""
    gauges: dict[str, GaugeSource] = {}
    tallies: dict[str, dict[tuple[str, ...], int]] = {}
    for key, (kind, name, description) in _INSTRUMENTS.items():
        if kind == "tally":
            tallies[key] = {}
            keys = _TALLY_KEYS[key]
            meter.create_observable_counter(
                name, callbacks=[_tally_callback(tallies[key], keys)], description=description
            )
    for name, description in _GAUGES.items():
        meter.create_observable_gauge(
            name, callbacks=[_gauge_callback(gauges, name)], description=description
        )
    return gauges, tallies


def _asked(env: Mapping[str, str]) -> bool:
    return env.get(TRACE_POLICIES, "").strip().lower() in ("1", "true", "yes", "on")


def _otlp(tracer_provider: TracerProvider, endpoint: str) -> MetricReader:
    """Export spans and metrics by OTLP over HTTP: the base endpoint plus each signal's path, as the
    OTLP/HTTP specification defines it. Returns the metric reader to give the meter provider."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    return PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))


def _instrument(meter: Meter, kind: str, name: str, description: str) -> Any:
    if kind == "histogram":
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=LATENCY_BUCKETS
        )
    if kind == "up_down_counter":
        return meter.create_up_down_counter(name, description=description)
    return meter.create_counter(name, description=description)


def _plain(meter: Meter, kind: str, name: str, description: str) -> PlainSum | PlainHistogram:
    if kind == "histogram":
        return PlainHistogram(name, description, LATENCY_BUCKETS)
    return PlainSum(name, description, monotonic=kind != "up_down_counter")


def _gauge_callback(
    gauges: Mapping[str, GaugeSource], name: str
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Reads ``gauges[name]`` at collection time (the app fills ``gauges`` after the meter is built)."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        source = gauges.get(name)
        return [Observation(v, dict(a)) for v, a in source()] if source is not None else []

    return callback


def _tally_callback(
    tally: Mapping[tuple[str, ...], int], keys: tuple[str, ...]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Reads a tally at collection time; ``dict(tally)`` is one step under the GIL, so a collection in
    the OTLP exporter's thread sees whole counts."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, dict(zip(keys, values, strict=True))) for values, n in dict(tally).items()]

    return callback
