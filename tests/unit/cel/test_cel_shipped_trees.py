"""The parse trees of the bundled packs' CEL expressions ship beside the grammar: they are the trees the
parser makes of those texts (every token's type, value and positions), the file matches the packs, and
loading the bundled packs then builds no parser at all; a file of another grammar is ignored."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import lark
import pytest

from policyengine.cel import (
    BOOL,
    STRING,
    CelCompileError,
    Declarations,
    frontend,
    get_backend,
    parser,
    shippedtrees,
)
from policyengine.native import DECLARED

EXPRESSIONS = [
    "true && false || !null",
    "1 + 2u * 3.5e-1 - -4 / 5 % 6 == 7 ? 'a' : \"b\"",
    "object.spec.containers.all(c, has(c.resources) && c.resources.limits['nvidia.com/gpu'] > 1)",
    "x.?y.orValue(3) == 3 && m[?'k'].hasValue() && [?a, b] == [] && {?'k': v}.size() == 0",
    "a\n  && b\n  || c",
]


def _dump(node: Any) -> Any:
    """Everything a reader of ``node`` may see: rule names, token types, values and positions."""
    if isinstance(node, lark.Token):
        return ("token", node.type, str(node), [getattr(node, n) for n in shippedtrees._POSITIONS])
    data = node.data if type(node.data) is str else _dump(node.data)
    return (type(node).__name__, data, [_dump(child) for child in node.children])


def test_shipped_trees_match_the_bundled_packs() -> None:
    # A change to a bundled pack's expressions, cel.lark or lark needs scripts/write-cel-trees.py.
    script = runpy.run_path(str(Path(__file__).parents[3] / "scripts" / "write-cel-trees.py"))
    assert shippedtrees.TREES.read_text(encoding="utf-8") == script["current_text"]()


def test_every_shipped_tree_is_the_parsers_tree() -> None:
    shipped = json.loads(shippedtrees.TREES.read_text(encoding="utf-8"))["trees"]
    assert len(shipped) > 50  # the bundled packs' expressions are there
    for source, encoded in shipped.items():
        assert _dump(shippedtrees.decode(encoded)) == _dump(parser.parse_text(source)), source


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_encoding_keeps_every_token_and_position(source: str) -> None:
    tree = parser.parse_text(source)
    again = shippedtrees.decode(json.loads(json.dumps(shippedtrees.encode(tree))))
    assert again == tree and _dump(again) == _dump(tree)


def test_loading_the_bundled_packs_builds_no_parser() -> None:
    # A fresh process: the parser is built on first use and kept (functools.cache).
    code = (
        "from policyengine.cel import parser\n"
        "from policyengine.policyset import load_policy_set\n"
        "policies = load_policy_set([], include_bundled=True)\n"
        "assert policies.policies\n"
        "print(parser._lark.cache_info().currsize, parser._positioned_lark.cache_info().currsize)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"]


def test_a_text_not_shipped_is_parsed() -> None:
    source = "object.metadata.name.startsWith('not-in-any-bundled-pack-')"
    assert shippedtrees.lookup(source, parser.grammar_fingerprint()) is None
    assert parser.parse(source) == parser.parse_text(source)


def test_trees_of_another_grammar_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = next(iter(json.loads(shippedtrees.TREES.read_text(encoding="utf-8"))["trees"]))
    stale = tmp_path / "cel-trees.json"
    stale.write_text(shippedtrees.text([source], parser.parse_text, "another grammar"), encoding="utf-8")
    monkeypatch.setattr(shippedtrees, "TREES", stale)
    _forget()
    try:
        assert shippedtrees.lookup(source, parser.grammar_fingerprint()) is None
        stale.write_text("{not json", encoding="utf-8")
        _forget()
        assert shippedtrees.lookup(source, parser.grammar_fingerprint()) is None
        stale.write_text(
            shippedtrees.text([source], parser.parse_text, parser.grammar_fingerprint()), encoding="utf-8"
        )
        _forget()
        assert shippedtrees.lookup(source, parser.grammar_fingerprint()) == parser.parse_text(source)
    finally:
        _forget()


def _forget() -> None:
    """Read the shipped file again at its next use."""
    for cached in (shippedtrees._file, shippedtrees._table, shippedtrees._checked):
        cached.cache_clear()


def _checks_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The top node of each tree whose compile-time checks run from now on."""
    ran: list[str] = []
    real = frontend.check

    def counted(tree: Any, known: frozenset[str]) -> None:
        ran.append(str(tree.data))
        real(tree, known)

    monkeypatch.setattr(frontend, "check", counted)
    return ran


def test_the_bundled_packs_are_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from policyengine.expressions import Compiler
    from policyengine.policyset import load_policy_set

    ran = _checks_run(monkeypatch)
    assert load_policy_set([], include_bundled=True, compiler=Compiler(get_backend("fast"))).policies
    assert ran == []  # every bundled text is vouched for under the key it is compiled with
    with parser.without_shipped_trees():
        load_policy_set([], include_bundled=True, compiler=Compiler(get_backend("fast")))
    assert len(ran) >= len(json.loads(shippedtrees.TREES.read_text(encoding="utf-8"))["checked"])


def test_a_bundled_text_is_checked_under_other_declarations_and_result_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = json.loads(shippedtrees.TREES.read_text(encoding="utf-8"))["checked"]
    source = "!workload.isTemplate"
    assert frontend.check_key(DECLARED, BOOL) in checked[source]
    backend = get_backend("fast")
    ran = _checks_run(monkeypatch)
    backend.compile(source, DECLARED, BOOL)
    assert ran == []
    without = Declarations("Policy", DECLARED.roots - {"workload"})
    with pytest.raises(CelCompileError) as undeclared:
        backend.compile(source, without, BOOL)
    assert undeclared.value.code == "undeclared_reference"
    with pytest.raises(CelCompileError) as typed:
        backend.compile(source, DECLARED, STRING)
    assert typed.value.code == "cel_type"
    assert len(ran) == 2


def test_checks_of_another_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # A front end whose function or type names differ from the default backend's checks every text.
    source = "!workload.isTemplate"
    ran = _checks_run(monkeypatch)
    fewer = frontend.Frontend(frozenset({"size"}), frozenset())
    fewer.parse(source, DECLARED, BOOL)
    assert len(ran) == 1


def test_a_file_of_another_environment_vouches_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "!workload.isTemplate"
    key = frontend.check_key(DECLARED, BOOL)
    environment = get_backend("fast")._frontend.environment()  # type: ignore[attr-defined]
    grammar = parser.grammar_fingerprint()
    stale = tmp_path / "cel-trees.json"
    monkeypatch.setattr(shippedtrees, "TREES", stale)
    try:
        for checks, fingerprint, vouched in (
            ("another environment", grammar, False),
            (environment, "another grammar", False),
            (environment, grammar, True),
        ):
            body = shippedtrees.text([source], parser.parse_text, fingerprint, {source: {key}}, checks)
            stale.write_text(body, encoding="utf-8")
            _forget()
            assert shippedtrees.vouched(source, key, grammar, environment) is vouched
            assert not shippedtrees.vouched(
                source, frontend.check_key(DECLARED, STRING), grammar, environment
            )
    finally:
        _forget()
