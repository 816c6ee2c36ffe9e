"""GPU counts written as plain integers or digit strings take a short path (no Fraction); these pin that it
answers exactly as the exact parser does, at and around its edges, and that absent fields still read as
empty mappings."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from policyengine.quantity import INT64_MAX
from policyengine.workloads.values import as_dict, gpu_quantity, quantity_value


def exact(value: Any) -> int | None:
    """What the exact path makes of ``value``: its count, or None when it is a problem."""
    try:
        amount = quantity_value(value)
    except Exception:
        return None
    if amount < 0 or amount.denominator != 1 or amount > INT64_MAX:
        return None
    return int(amount)


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        8,
        INT64_MAX,
        INT64_MAX + 1,
        -1,
        "0",
        "1",
        "007",
        "9" * 18,
        "9" * 19,
        "9223372036854775808",
        " 4",
        "4 ",
        "+1",
        "-1",
        "1e1",
        "1.0",
        "1.5",
        "٣",
        "²",
        "",
        "4Ki",
    ],
)
def test_the_short_path_answers_as_the_exact_one(value: Any) -> None:
    problems: list[dict[str, str]] = []
    got = gpu_quantity(value, "spec.resources.limits[nvidia.com/gpu]", problems)
    expected = exact(value)
    if expected is None:
        assert got == 0 and len(problems) == 1, (value, problems)
    else:
        assert (got, problems) == (expected, []), value
        assert type(got) is int and Fraction(got) == quantity_value(value)


def test_absent_and_non_mapping_values_read_as_an_empty_mapping() -> None:
    for value in (None, [], "x", 1, True):
        assert dict(as_dict(value)) == {}
    given = {"a": 1}
    assert as_dict(given) is given
