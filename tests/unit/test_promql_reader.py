"""tests/promql.py, the PromQL reader the monitoring tests use: metric names told from functions,
aggregations, keywords, label names, strings, durations and Grafana variables; bounded on hostile input."""

from __future__ import annotations

import re

import pytest

from tests.promql import MAX_EXPRESSION, PromQLError, label_values, reads


def test_metrics_are_told_from_functions_aggregations_and_labels() -> None:
    found = reads(
        'histogram_quantile(0.99, sum by (le, policy) (rate(a_bucket{pod=~"$pod", x="{b}"}[$__rate_interval])))'
        " / ignoring(policy) group_left sum(b_total) without (c) > bool 2 and on (d) c offset 5m"
    )
    assert found.metrics == [
        ("a_bucket", ("histogram_quantile", "sum", "rate")),
        ("b_total", ("sum",)),
        ("c", ()),
    ]
    assert found.labels == {"le", "policy", "pod", "x", "c", "d"}


def test_subqueries_numbers_and_variables_are_not_metrics() -> None:
    found = reads("max_over_time(rate(x_total[5m])[1h:30s]) * 14 * 86400 + ${scale} - 1e3")
    assert found.names == {"x_total"}


def test_grafana_label_values_queries() -> None:
    assert label_values('label_values(m{namespace="$namespace"}, pod)') == (
        'm{namespace="$namespace"}',
        "pod",
    )
    with pytest.raises(PromQLError):
        label_values("query_result(m)")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("sum(rate(x[5m])", "unbalanced '('"),
        ("sum(x))", "unbalanced ')'"),
        ('x{a="b"', "unclosed '{'"),
        ("rate(x[5m)", "unclosed '['"),
        ("x # comment", "unexpected '#'"),
        ("x" * (MAX_EXPRESSION + 1), "longer than"),
    ],
)
def test_hostile_or_broken_expressions_are_refused(expr: str, message: str) -> None:
    with pytest.raises(PromQLError, match=re.escape(message)):
        reads(expr)
