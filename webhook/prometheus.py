"""OpenTelemetry SDK metric data -> Prometheus text exposition format (version 0.0.4).

The OpenTelemetry Prometheus exporter is not available from our package index, so ``/metrics`` renders
the SDK's in-memory reader itself. Counters (monotonic sums) gain ``_total``; histograms become
cumulative ``_bucket{le=...}`` series with ``_sum`` and ``_count``; everything else is a gauge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, Metric, MetricsData, Sum

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def render(data: MetricsData | None) -> str:
    lines: list[str] = []
    for metric in _metrics(data):
        lines.extend(_render_metric(metric))
    return "\n".join(lines) + "\n" if lines else ""


def _metrics(data: MetricsData | None) -> Iterator[Metric]:
    if data is None:
        return
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def _render_metric(metric: Metric) -> Iterator[str]:
    name = metric_name(metric.name)
    help_text = (metric.description or "").replace("\\", "\\\\").replace("\n", "\\n")
    data = metric.data
    if isinstance(data, Sum) and data.is_monotonic:
        if not name.endswith("_total"):
            name += "_total"
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} counter"
        for point in data.data_points:
            yield f"{name}{_labels(point.attributes)} {_num(point.value)}"
    elif isinstance(data, Sum | Gauge):
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} gauge"
        for point in data.data_points:
            yield f"{name}{_labels(point.attributes)} {_num(point.value)}"
    elif isinstance(data, Histogram):
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} histogram"
        for hp in data.data_points:
            cumulative = 0
            for bound, count in zip(hp.explicit_bounds, hp.bucket_counts, strict=False):
                cumulative += count
                yield f"{name}_bucket{_labels(hp.attributes, le=_num(bound))} {cumulative}"
            yield f"{name}_bucket{_labels(hp.attributes, le='+Inf')} {hp.count}"
            yield f"{name}_sum{_labels(hp.attributes)} {_num(hp.sum)}"
            yield f"{name}_count{_labels(hp.attributes)} {hp.count}"


def metric_name(name: str) -> str:
    cleaned = _BAD_NAME.sub("_", name)
    return cleaned if not cleaned[:1].isdigit() else "_" + cleaned


def _labels(attributes: Mapping[str, Any] | None, **extra: str) -> str:
    pairs = [(_BAD_LABEL.sub("_", str(k)), str(v)) for k, v in sorted((attributes or {}).items())]
    pairs.extend(extra.items())
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float | int) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(value)


def parse_samples(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """The samples of an exposition (for tests and the benchmark): (name, labels, value)."""
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if m is None:
            raise ValueError(f"not a Prometheus sample: {line!r}")
        labels = {k: v for k, v in label.findall(m.group(2) or "")}
        yield m.group(1), labels, float(m.group(3))
