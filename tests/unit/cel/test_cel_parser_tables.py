"""The CEL parser loads its LALR tables from the JSON shipped beside the grammar, and parses exactly as
the parser built from the grammar does; tables that do not match the grammar are never used."""

from __future__ import annotations

from pathlib import Path

import pytest
from celpy.celparser import CELParseError

from policyengine.cel import parser

EXPRESSIONS = [
    "true && false || !null",
    "1 + 2u * 3.5e-1 - -4 / 5 % 6 == 7 ? 'a' : \"b\"",
    "b'bytes' == r'raw' && '''multi\nline''' != \"\"\"x\"\"\"",
    "object.spec.containers.all(c, has(c.resources) && c.resources.limits['nvidia.com/gpu'] > 1)",
    "[1, 2, 3].map(x, x * 2).filter(y, y > 2).exists_one(z, z == 4)",
    "{'a': 1, 'b': [2, {'c': 3}]}['b'][1].c in [3]",
    "x.?y.orValue(3) == 3 && m[?'k'].hasValue() && [?a, b] == [] && {?'k': v}.size() == 0",
    "google.protobuf.Timestamp{seconds: 1}.getFullYear() >= int(duration('1h'))",
    "size(variables.names) > 0 && variables['other'].startsWith('x')",
    "a\n  && b\n  || c",
]
BROKEN = ["1 +", "a.(b)", "{'a': }", "'unterminated", "x.?", "[?]"]


def test_shipped_tables_are_current() -> None:
    # A change to cel.lark or to lark needs parser.write_tables(); until then the grammar is built.
    text = parser.TABLES.read_text(encoding="utf-8")
    assert parser.thaw(text)["fingerprint"] == parser.fingerprint(parser._GRAMMAR.read_text("utf-8"))


def test_the_parser_in_use_is_the_shipped_one() -> None:
    assert parser._lark().source_path == "<deserialized>"


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_shipped_tables_parse_as_the_grammar_does(source: str) -> None:
    built = parser.build(parser._GRAMMAR.read_text(encoding="utf-8"))
    shipped, fresh = parser.parse(source, positions=True), built.parse(source)
    assert shipped == fresh == parser.parse(source)  # the same tree with or without positions
    assert [(t.meta.line, t.meta.column, t.meta.end_pos) for t in shipped.iter_subtrees()] == [
        (t.meta.line, t.meta.column, t.meta.end_pos) for t in fresh.iter_subtrees()
    ]


@pytest.mark.parametrize("source", BROKEN)
def test_shipped_tables_refuse_as_the_grammar_does(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CELParseError) as shipped:
        parser.parse(source)
    built = parser.build(parser._GRAMMAR.read_text(encoding="utf-8"))
    monkeypatch.setattr(parser, "_lark", lambda: built)
    with pytest.raises(CELParseError) as fresh:
        parser.parse(source)
    assert shipped.value.args == fresh.value.args
    assert (shipped.value.line, shipped.value.column) == (fresh.value.line, fresh.value.column)


def test_tables_of_another_grammar_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grammar = parser._GRAMMAR.read_text(encoding="utf-8")
    stale = tmp_path / "cel-tables.json"
    stale.write_text(parser.tables_text(grammar.replace('"?"', '"?" ', 1)), encoding="utf-8")
    monkeypatch.setattr(parser, "TABLES", stale)
    assert parser._shipped(grammar) is None
    stale.write_text("{not json", encoding="utf-8")
    assert parser._shipped(grammar) is None
    stale.write_text(parser.tables_text(grammar), encoding="utf-8")
    loaded = parser._shipped(grammar)
    assert loaded is not None and loaded.parse("a.?b") == parser.parse("a.?b")


def test_freeze_round_trips_integer_keys_and_tuples() -> None:
    import json

    value = {"a": [1, (2, "x")], 3: {"b": (4,)}, "c": {0: [5]}}
    assert parser.thaw(json.dumps(parser.freeze(value))) == value


def test_variables_read_parses_each_expression_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A policy set asks again for every policy that shares an expression; an expression that does not
    # name ``variables`` cannot read one and is not parsed at all.
    from policyengine.cel import checker

    parsed: list[str] = []

    def counting(source: str) -> object:
        parsed.append(source)
        return parser.parse(source)

    monkeypatch.setattr(checker, "parse", counting)
    checker.variables_read.cache_clear()
    source = "variables.limit > object.spec.replicas && variables['other'] == 'x'"
    assert checker.variables_read(source) == {"limit", "other"}
    assert checker.variables_read(source) == {"limit", "other"}
    assert checker.variables_read("object.spec.replicas > 1") == frozenset()
    assert checker.variables_read("variables.(") == frozenset()
    assert parsed == [source, "variables.("]
