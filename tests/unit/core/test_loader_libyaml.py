"""libyaml's composer, used for texts too short to pass their node budget, reads every file as PyYAML's
bounded composer does: the same documents, lines, columns and field positions, and the same problem at
the same line for broken and hostile YAML (repeated keys, alias bombs, recursion, deep nesting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine import yamlreader
from policyengine.errors import LoadError
from policyengine.loader import DEFAULT_LIMITS, InputLimits, parse_prefix
from policyengine.yamlnodes import MAX_DEPTH
from tests.unit.core.test_loader_bounds import laughs

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")

HOSTILE = {
    "duplicate-keys": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec: {x: 1, x: 2}\n",
    "laughs": laughs(9),
    "laughs-small": laughs(3),
    "merge-bomb": "a0: &a0 {k0: 0, k1: 1, k2: 2}\n"
    + "".join(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}]}}\n" for i in range(1, 9)),
    "recursive": "apiVersion: v1\nkind: List\nitems: &items\n- x\n- *items\n",
    "self": "a: &m {self: *m}\n",
    "deep-flow": "a: 1\nx: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n",
    "deep-block": "a: 1\n" + "".join(" " * i + "k:\n" for i in range(MAX_DEPTH + 5)) + " " * 200 + "k: v\n",
    "deep-dashes": "- " * (MAX_DEPTH + 3) + "a\n",
    "very-deep": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "at-bound": "x: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n",
    "undefined-alias": "a: *nope\n",
    "duplicate-anchor": "a: &x 1\nb: &x 2\nc: *x\n",
    "long-int": "a: 1\nb: 1" + ":0" * 3000 + "\n",
    "syntax-after-docs": "a: 1\n---\nb: 2\n---\nc: [\n",
    "tabs": "a:\n\tb: 1\n",
    "bad-tag": "a: !!binary '%%%'\nb: !!timestamp 2020-99-99\n",
    "many-docs": "".join(f"---\nn: {i}\n" for i in range(50)),
    "merge": "base: &b {x: 1, y: 2}\nobj:\n  <<: *b\n  y: 3\n",
}


def _read(text: str, file: str, libyaml: bool, limits: InputLimits) -> Any:
    """What the loader makes of ``text``, positions included, with one composer or the other."""
    saved = yamlreader.USE_LIBYAML_COMPOSER
    yamlreader.USE_LIBYAML_COMPOSER = libyaml
    try:
        docs, duplicated, broken = parse_prefix(text, file, limits)
    except LoadError as err:
        return ("raised", err.problems)
    finally:
        yamlreader.USE_LIBYAML_COMPOSER = saved
    return [(d.data, d.file, d.line, d.index, d.positions) for d in docs], duplicated, broken


def _same(text: str, file: str, limits: InputLimits = DEFAULT_LIMITS) -> Any:
    pure = _read(text, file, False, limits)
    assert _read(text, file, True, limits) == pure
    return pure


def _corpus() -> list[Path]:
    files = [p for d in ("tests", "examples", "policies") for p in (ROOT / d).rglob("*")]
    return sorted(p for p in files if p.suffix in (".yaml", ".yml", ".json") and p.is_file())


def test_every_file_of_the_corpus_reads_the_same() -> None:
    files = _corpus()
    assert len(files) > 200
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if yamlreader.composes(text, DEFAULT_LIMITS.max_nodes):
            _same(text, str(path))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_reads_the_same(name: str) -> None:
    _same(HOSTILE[name], f"{name}.yaml")


def test_deep_nesting_is_refused_by_both_at_its_line() -> None:
    result = _same(HOSTILE["deep-flow"], "deep.yaml")
    problems = result[1] if result[0] == "raised" else [result[2]]
    assert [(p.line, f"deeper than {MAX_DEPTH}" in p.message) for p in problems] == [(2, True)]


def test_a_text_that_could_pass_its_node_budget_is_composed_by_the_bounded_composer() -> None:
    limits = InputLimits(max_bytes=64 * 1024)
    small = "a: 1\n" * (limits.max_nodes // yamlreader.NODES_PER_BYTE // 5)
    assert yamlreader.composes(small, limits.max_nodes)
    big = "- a\n" * (limits.max_nodes // 2)  # 2 nodes' worth of text per node: past a quarter
    assert not yamlreader.composes(big, limits.max_nodes)
    broken = _read("- a\n" * (limits.max_nodes + 10), "many.yaml", True, limits)[2]
    assert "YAML nodes in one file" in broken.message  # the node budget still holds
