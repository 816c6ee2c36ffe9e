"""Loading a policy set parses each distinct CEL text once: the compile step, the ``variables.<name>``
check and a second compile under another document kind's names share one tree. Counted at the lark
parser, so a repeated parse shows whatever asks for it."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import parser
from policyengine.cel.checker import variables_read
from policyengine.errors import LoadError
from policyengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def lark_parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Every text the lark parser is handed, with how many times (no tree taken from the shipped ones,
    which would hide the bundled packs' texts from the probe)."""
    counts: collections.Counter[str] = collections.Counter()

    class Counting:
        def __init__(self, real: Any) -> None:
            self.real = real

        def parse(self, source: str) -> Any:
            counts[source] += 1
            return self.real.parse(source)

    bare, placed = Counting(parser._lark()), Counting(parser._positioned_lark())
    monkeypatch.setattr(parser, "_lark", lambda: bare)
    monkeypatch.setattr(parser, "_positioned_lark", lambda: placed)
    variables_read.cache_clear()  # an earlier test's answers would hide this one's parses
    with parser.without_shipped_trees():
        yield counts


def test_bundled_packs_and_config_parse_each_text_once(lark_parses: collections.Counter[str]) -> None:
    load_policy_set([], config_paths=[str(ROOT / "examples" / "governance.yaml")])
    assert len(lark_parses) > 100  # the probe saw the packs' expressions
    assert [text for text, n in lark_parses.items() if n > 1] == []
    # Texts that read variables were parsed for the compile and for the variables check before.
    assert any("variables." in text for text in lark_parses)


POLICY = """\
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: shared-text}
spec:
  variables:
    - {name: names, expression: "object.spec.containers.map(c, c.name)"}
  validations:
    - expression: "size(variables.names) > 0"
    - expression: "size(variables.names) > 0"
      message: the same text twice
---
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: same-text-elsewhere}
spec:
  variables:
    - {name: names, expression: "object.spec.containers.map(c, c.name)"}
  validations:
    - expression: "size(variables.names) > 0"
"""


def test_a_text_met_again_is_not_parsed_again(tmp_path: Path, lark_parses: collections.Counter[str]) -> None:
    (tmp_path / "p.yaml").write_text(POLICY, encoding="utf-8")
    load_policy_set([str(tmp_path)], include_bundled=False)
    assert lark_parses == {"object.spec.containers.map(c, c.name)": 1, "size(variables.names) > 0": 1}


def test_a_broken_text_still_names_its_file_line_and_field(
    tmp_path: Path, lark_parses: collections.Counter[str]
) -> None:
    broken = POLICY.replace(
        '"size(variables.names) > 0"\n      message', '"size(variables.names) >"\n      message'
    )
    (tmp_path / "p.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(LoadError) as err:
        load_policy_set([str(tmp_path)], include_bundled=False)
    [problem] = err.value.problems
    assert (problem.file, problem.line, problem.path) == (
        str(tmp_path / "p.yaml"),
        9,
        "spec.validations[1].expression",
    )
    assert lark_parses["size(variables.names) >"] == 1


def test_outside_a_policy_set_load_nothing_is_kept(lark_parses: collections.Counter[str]) -> None:
    first, second = parser.parse("a + 1"), parser.parse("a + 1")
    assert first == second and first is not second
    with parser.parse_once():
        assert parser.parse("a + 2") is parser.parse("a + 2")
    assert lark_parses == {"a + 1": 2, "a + 2": 1}


def test_positions_are_recorded_only_when_asked(lark_parses: collections.Counter[str]) -> None:
    # The checks and the fast backend never read a node's line; cel-python's evaluator does.
    bare, placed = parser.parse("a.b + 1"), parser.parse("a.b + 1", positions=True)
    assert bare == placed
    assert [n.meta.empty for n in bare.iter_subtrees()] == [True] * len(list(bare.iter_subtrees()))
    assert (placed.meta.line, placed.meta.column) == (1, 1)
    with parser.parse_once():  # a tree with positions serves a reader that needs none, not the reverse
        first = parser.parse("c + 1")
        assert parser.parse("c + 1", positions=True) is not first
        assert parser.parse("c + 1") is parser.parse("c + 1", positions=True)
    assert lark_parses == {"a.b + 1": 2, "c + 1": 2}
