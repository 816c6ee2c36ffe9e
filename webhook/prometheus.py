"""OpenTelemetry SDK metric data -> Prometheus text exposition format (version 0.0.4).

The OpenTelemetry Prometheus exporter is not available from our package index, so ``/metrics`` renders
the SDK's in-memory reader itself. Counters (monotonic sums) gain ``_total``; histograms become
cumulative ``_bucket{le=...}`` series with ``_sum`` and ``_count``; everything else is a gauge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, Metric, MetricsData, Sum

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class Point:
    """One series of a family: its labels and a value, or a histogram's per-bucket counts (one more
    than ``bounds``: the last is above every bound), sum and count."""

    labels: dict[str, str]
    value: float | int = 0
    bounds: tuple[float, ...] = ()
    buckets: tuple[int, ...] = ()
    sum: float | int = 0
    count: int = 0


@dataclass
class Family:
    """One metric as /metrics shows it: its OpenTelemetry name, help text, kind and series. Kinds:
    ``counter`` (monotonic sums), ``histogram``, ``gauge`` (everything else)."""

    name: str
    description: str
    kind: str
    points: list[Point] = field(default_factory=list)


def render(data: MetricsData | None) -> str:
    return render_families(families(data))


def families(data: MetricsData | None) -> list[Family]:
    """The SDK's metric data as families (the form the workers of one server merge)."""
    return [_family(metric) for metric in _metrics(data)]


def render_families(found: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in found:
        lines.extend(_render_family(family))
    return "\n".join(lines) + "\n" if lines else ""


def _metrics(data: MetricsData | None) -> Iterator[Metric]:
    if data is None:
        return
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def _family(metric: Metric) -> Family:
    data = metric.data
    description = metric.description or ""
    if isinstance(data, Histogram):
        points = [
            Point(
                _strings(hp.attributes),
                bounds=tuple(hp.explicit_bounds),
                buckets=tuple(hp.bucket_counts),
                sum=hp.sum,
                count=hp.count,
            )
            for hp in data.data_points
        ]
        return Family(metric.name, description, "histogram", points)
    kind = "counter" if isinstance(data, Sum) and data.is_monotonic else "gauge"
    values = data.data_points if isinstance(data, Sum | Gauge) else ()
    return Family(metric.name, description, kind, [Point(_strings(p.attributes), p.value) for p in values])


def _strings(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (attributes or {}).items()}


def _render_family(family: Family) -> Iterator[str]:
    name = metric_name(family.name)
    help_text = family.description.replace("\\", "\\\\").replace("\n", "\\n")
    if family.kind == "counter" and not name.endswith("_total"):
        name += "_total"
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {family.kind}"
    for point in family.points:
        if family.kind != "histogram":
            yield f"{name}{_labels(point.labels)} {_num(point.value)}"
            continue
        cumulative = 0
        for bound, count in zip(point.bounds, point.buckets, strict=False):
            cumulative += count
            yield f"{name}_bucket{_labels(point.labels, le=_num(bound))} {cumulative}"
        yield f"{name}_bucket{_labels(point.labels, le='+Inf')} {point.count}"
        yield f"{name}_sum{_labels(point.labels)} {_num(point.sum)}"
        yield f"{name}_count{_labels(point.labels)} {point.count}"


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
