"""The expansion walk (aliases and their share of the tree) runs only on a text that can hold an alias:
one without a ``*`` has none to expand, and its nesting is bounded as it is composed."""

from __future__ import annotations

import pytest

from policyengine import loader
from policyengine.errors import LoadError
from policyengine.loader import parse_text
from policyengine.yamlnodes import MAX_DEPTH


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    walked: list[str] = []
    real = loader.check_expansion

    def spy(file: str, node: object, expansion: object) -> object:
        walked.append(file)
        return real(file, node, expansion)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "check_expansion", spy)
    return walked


def test_a_text_without_aliases_is_not_walked_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _walks(monkeypatch)
    docs = parse_text("a: 1\nb: [x, {c: d}]\n---\ne: 2\n", "plain.yaml")
    assert [d.data for d in docs] == [{"a": 1, "b": ["x", {"c": "d"}]}, {"e": 2}]
    assert walked == []


def test_a_text_with_aliases_is_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _walks(monkeypatch)
    docs = parse_text("a: &x [1, 2]\nb: *x\n", "aliased.yaml")
    assert docs[0].data == {"a": [1, 2], "b": [1, 2]}
    assert walked == ["aliased.yaml"]


@pytest.mark.parametrize("flow", [True, False])
def test_nesting_without_aliases_is_still_refused(flow: bool) -> None:
    depth = MAX_DEPTH + 5
    if flow:
        text = "[" * depth + "]" * depth + "\n"
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"
    with pytest.raises(LoadError) as err:
        parse_text(text, "deep.yaml")
    assert f"nesting deeper than {MAX_DEPTH} levels" in err.value.problems[0].message
