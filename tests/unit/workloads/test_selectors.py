"""GPU products selected by DRA CEL device selectors: the == / in forms on the product attribute, read
from cel-python's parse tree, normalised to the node-label form; everything else is "not selected"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.workloads.selectors import (
    MAX_DEPTH,
    MAX_EXPRESSION,
    MAX_LIST,
    product_label,
    selected_products,
)

P = "device.attributes['gpu.nvidia.com'].productName"
H100 = "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize(
    "expressions, allowed",
    [
        ([f"{P} == '{H100}'"], ["NVIDIA-H100-80GB-HBM3"]),
        ([f"'{H100}' == {P}"], ["NVIDIA-H100-80GB-HBM3"]),
        ([f'device.attributes["gpu.nvidia.com"].productName == "{H100}"'], ["NVIDIA-H100-80GB-HBM3"]),
        (["device.attributes['gpu.nvidia.com']['productName'] == 'A'"], ["A"]),
        ([f"{P} in ['NVIDIA A100-SXM4-40GB', '{H100}']"], ["NVIDIA-A100-SXM4-40GB", "NVIDIA-H100-80GB-HBM3"]),
        ([f"{P} == 'A' || {P} == 'B'"], ["A", "B"]),
        ([f"{P} in ['A', 'B',]"], ["A", "B"]),  # CEL allows a trailing comma, as the engine does
        ([f"({P} == 'A')"], ["A"]),
        ([f"device.driver == 'gpu.nvidia.com' && ({P} == 'A' || 'B' == {P})"], ["A", "B"]),
        ([f"{P} in ['A', 'B'] && device.attributes['gpu.nvidia.com'].profile == '1g.5gb'"], ["A", "B"]),
        ([f"{P} in ['A', 'B']", f"{P} in ['B', 'C']"], ["B"]),  # every selector holds
        ([f"{P} == 'A'", "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0"], ["A"]),
    ],
)
def test_product_forms_are_read(expressions: list[str], allowed: list[str]) -> None:
    selection = selected_products(expressions)
    assert selection.pinned
    assert list(selection.allowed) == allowed
    assert selection.view("spec.devices.requests[0]")["allowed"] == allowed


@pytest.mark.parametrize(
    "expression, reason",
    [
        (f"{P}.lowerAscii().matches('^.*a100.*$')", "no term compares"),
        (f"{P} == 'A' || device.driver == 'x'", "no term compares"),  # one side allows any product
        (f"{P} != 'A'", "no term compares"),
        ("device.attributes['gpu.example.com'].productName == 'A'", "no term compares"),
        (f"{P} == name", "other than a string literal"),
        (f"{P} in names", "other than a list literal"),
        (f"{P} in [1, 'A']", "other than a string literal"),
        ("device.attributes[", "does not parse"),
    ],
)
def test_other_forms_select_no_product_and_show_the_expression(expression: str, reason: str) -> None:
    selection = selected_products([expression])
    assert not selection.pinned
    assert selection.unread == expression
    assert reason in selection.reason


def test_no_selector_selects_no_product() -> None:
    assert not selected_products([]).pinned


def test_product_names_take_the_node_label_form() -> None:
    assert product_label(" NVIDIA  H100\t80GB HBM3 ") == "NVIDIA-H100-80GB-HBM3"
    assert product_label("NVIDIA-H100-80GB-HBM3") == "NVIDIA-H100-80GB-HBM3"


@pytest.mark.parametrize(
    "expression, reason",
    [
        (f"{P} == '" + "x" * MAX_EXPRESSION + "'", f"longer than {MAX_EXPRESSION}"),
        ("(" * 2000 + f"{P} == 'A'" + ")" * 2000, "nests"),
        ("!" * 4000 + "true", "nests"),
        (f"{P} in [" + ", ".join(f"'p{i}'" for i in range(MAX_LIST + 1)) + "]", f"more than {MAX_LIST}"),
        (" && ".join("x == 1" for _ in range(MAX_DEPTH)), "nests"),
    ],
)
def test_hostile_selectors_are_bounded(expression: str, reason: str) -> None:
    selection = selected_products([expression])
    assert not selection.pinned
    assert reason in selection.reason
    assert len(selection.unread) <= 200


def test_non_strings_and_too_many_selectors_are_refused() -> None:
    assert not selected_products([{"cel": 1}]).pinned
    assert "more than 32" in selected_products([f"{P} == 'A'"] * 33).reason


def _selectors(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        cel = node.get("cel")
        if isinstance(cel, dict) and isinstance(cel.get("expression"), str):
            found.append(cel["expression"])
        for value in node.values():
            found += _selectors(value)
    elif isinstance(node, list):
        for value in node:
            found += _selectors(value)
    return found


CORPUS = Path(os.environ.get("POLICYENGINE_SHARED", "/work/shared")) / "corpus/upstream/dra"


def test_every_selector_of_the_dra_corpus_is_read_without_error() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"DRA corpus not found at {CORPUS} (set POLICYENGINE_SHARED)")
    seen = {}
    for path in sorted(CORPUS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            for expression in _selectors(doc):
                seen[expression] = selected_products([expression])
    assert seen, "the corpus has CEL selectors"
    for expression, selection in seen.items():
        # The corpus selects MIG profiles and matches product names by regex: no == / in on the product.
        assert not selection.pinned, expression
        assert selection.reason in ("no term compares the product attribute with == or in",), expression
        assert expression.startswith(selection.unread.rstrip("…"))
