"""Numbers read from a request are bounded: a quantity or count beyond Kubernetes' range is a problem in
the view (which the gpu-counts-readable policy denies), never a stall, an exception or a value that
cannot be bound as a CEL int."""

from __future__ import annotations

import math
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.workloads import describe
from policyengine.workloads.values import count, gpu_quantity

INT64_MAX = 2**63 - 1


def pod(*containers: dict[str, Any], replicas: Any = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": list(containers)}}},
    }


def gpus(value: Any) -> dict[str, Any]:
    return {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": value}}}


# Each of these once stalled describe() for tens of seconds (10**exponent built exactly), raised out of
# it (int() of a 5,000-digit string, Fraction(inf)), or put a number beyond int64 into the view.
OUT_OF_RANGE = ["1e30000000", "1e-30000000", "1" * 5000, "1" * 100_000, "9" * 30, "1e19", 10**30]
NOT_NUMBERS = [math.inf, -math.inf, math.nan, "1e" + "9" * 100_000, "²"]


@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=lambda v: str(v)[:24])
def test_out_of_range_gpu_quantity_is_a_problem(value: Any) -> None:
    view = describe(pod(gpus(value)))
    path = "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]"
    assert [p["path"] for p in view["problems"]] == [path]
    assert "out of range" in view["problems"][0]["message"] or "whole" in view["problems"][0]["message"]
    assert len(view["problems"][0]["message"]) < 200  # the value is shown cut, not copied whole
    assert view["gpus"]["total"] == 0


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=lambda v: str(v)[:24])
def test_non_numeric_gpu_quantity_is_a_problem(value: Any) -> None:
    problems: list[dict[str, str]] = []
    assert gpu_quantity(value, "p", problems) == 0
    assert [p["path"] for p in problems] == ["p"]
    assert len(problems[0]["message"]) < 200


def test_binary_quantities_are_capped_as_kubernetes_caps_them() -> None:
    problems: list[dict[str, str]] = []
    assert gpu_quantity("16Ei", "p", problems) == INT64_MAX
    assert problems == []


def test_a_nano_below_a_whole_number_rounds_to_it_as_kubernetes_rounds() -> None:
    problems: list[dict[str, str]] = []
    assert gpu_quantity("1.9999999999", "p", problems) == 2
    assert gpu_quantity("1.000000001", "p", problems) == 0
    assert [p["message"] for p in problems] == [
        "GPU quantity '1.000000001' is not a whole non-negative number"
    ]


@pytest.mark.parametrize(
    "value",
    ["1" * 100_000, "²", "٣", 2**31, 10**40, "99999999999", "2147483648", -1],
    ids=lambda v: str(v)[:24],
)
def test_counts_beyond_int32_or_not_ascii_digits_are_problems(value: Any) -> None:
    problems: list[dict[str, str]] = []
    assert count(value, "spec.replicas", 1, problems) == 1
    assert [p["path"] for p in problems] == ["spec.replicas"]
    assert len(problems[0]["message"]) < 200


def test_largest_int32_count_is_read() -> None:
    problems: list[dict[str, str]] = []
    assert count("2147483647", "p", 1, problems) == 2**31 - 1
    assert count(2**31 - 1, "p", 1, problems) == 2**31 - 1
    assert problems == []


def test_totals_saturate_at_int64_and_bind_in_both_backends() -> None:
    big = str(INT64_MAX)
    view = describe(pod(gpus(big), gpus(big), gpus(big), replicas=2**31 - 1))
    assert view["problems"] == []
    assert view["containers"][0]["gpus"]["count"] == INT64_MAX
    assert view["podTemplates"][0]["gpus"]["perPod"] == INT64_MAX
    assert view["gpus"]["total"] == view["gpus"]["maxPerPod"] == INT64_MAX
    assert view["gpus"]["byResource"] == {"nvidia.com/gpu": INT64_MAX}
    for name in ("reference", "fast"):
        backend = get_backend(name)
        # A view value beyond int64 once made the reference backend's bind raise ValueError.
        result = backend.compile("workload.gpus.total > 8").evaluate(backend.bind({"workload": view}))
        assert result is True


@pytest.mark.parametrize("backend_name", ["reference", "fast"])
@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("isQuantity('1e30000000')", False),
        ("isQuantity('" + "1" * 5000 + "')", False),
        ("isQuantity('0.' + '0000000000' + '1')", True),
        ("quantity('16Ei').isInteger()", True),
        ("quantity('16Ei') == quantity('8Ei')", True),
        ("quantity('0.9999999999') == quantity('1')", True),
    ],
)
def test_cel_quantities_use_the_same_bounded_parser(backend_name: str, expr: str, expected: bool) -> None:
    backend = get_backend(backend_name)
    assert backend.compile(expr).evaluate(backend.bind({})) is expected


def test_cel_quantity_out_of_range_is_an_error_naming_the_bound() -> None:
    backend = get_backend("fast")
    with pytest.raises(Exception, match="out of range"):
        backend.compile("quantity('1e30000000')").evaluate(backend.bind({}))
