"""Documents of a tree share their position tables' keys and values: equal field paths and equal
(line, column) pairs are one object each, up to a bound, past which positions are still all kept."""

from __future__ import annotations

import pytest

from policyengine import yamlnodes
from policyengine.loader import parse_text

TEXT = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: [{{name: c, image: x}}]\n"


def test_equal_paths_and_positions_are_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlnodes, "_shared", {})
    first = parse_text(TEXT.format(name="a"), "a.yaml")[0].positions
    second = parse_text(TEXT.format(name="b"), "b.yaml")[0].positions
    assert first == second and len(first) == 9
    for (key_a, pos_a), (key_b, pos_b) in zip(first.items(), second.items(), strict=True):
        assert key_a is key_b and pos_a is pos_b


def test_past_the_bound_positions_are_kept_unshared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlnodes, "_shared", {})
    monkeypatch.setattr(yamlnodes, "SHARED_POSITIONS", 3)
    doc = parse_text(TEXT.format(name="a"), "a.yaml")[0]
    assert len(yamlnodes._shared) == 3
    assert doc.line_of(("spec", "containers", 0, "image")) == 6
    assert doc.column_of(("metadata", "name")) == 3
    assert len(doc.positions) == 9
