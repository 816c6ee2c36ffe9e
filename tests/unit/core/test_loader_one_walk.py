"""The one-walk reader (policyengine.yamlbuild, with remembered scalar tags) reads every text as the
generic route does -- PyYAML's safe constructor and the loader's separate walks -- with either composer:
the same documents (values of the same types, in the same key order), lines, columns and field
positions, repeated keys, and the same problem or refusal at the same line. Values also match
``yaml.load_all`` with PyYAML's SafeLoader."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine import yamlbuild, yamlreader
from policyengine.errors import LoadError
from policyengine.loader import DEFAULT_LIMITS, parse_prefix
from tests.unit.core.test_loader_libyaml import HOSTILE

ROOT = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("POLICYENGINE_SHARED", ROOT.parent / "shared"))

SCALARS = [
    "a", "yes", "No", "ON", "off", "y", "n", "true", "False", "~", "null", "Null", "", "0", "-0", "017",
    "0o17", "0x1F", "0b101", "1_000", "+12", "190:20:30", "-1:30", "1:0:0.5", ".inf", "-.Inf", ".NaN",
    "1e3", "1.5e-3", "6.8523015e+5", "685.230_15e+03", "0.", ".5", "2002-12-14", "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10", "'quoted: yes'", '"dq\\n\\t\\u00e9"', "'017'", "!!str 12", '!!int "12"',
    "!!float 1", "!!bool yes", "!!null ''", "!!binary aGVsbG8=", "!custom x", "=", "'<<'", "~x",
    "a b # comment", "1.2.3", "0x", "'multi\n  line'", "!!timestamp 2020-01-01",
]  # fmt: skip
KEYS = [
    "a",
    "b",
    "a",
    "c",
    "yes",
    "1",
    "'q'",
    "null",
    "<<",
    "=",
    "1.5",
    "2002-12-14",
    "x",
    "y",
    "z",
    "? [x, y]",
]


def _flow(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([s for s in SCALARS if "\n" not in s and "#" not in s])
    if roll < 0.75:
        return "[" + ", ".join(_flow(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    keys = [k for k in KEYS if not k.startswith("?")]
    return (
        "{" + ", ".join(f"{rng.choice(keys)}: {_flow(rng, depth + 1)}" for _ in range(rng.randrange(4))) + "}"
    )


def _block(rng: random.Random, depth: int, indent: str, anchors: set[str]) -> str:
    """A block collection at ``indent``, its entries holding scalars, flow or block collections,
    anchors and aliases to anchors already written."""
    lines = []
    seq = rng.random() < 0.3
    for _ in range(1 + rng.randrange(4)):
        key = rng.choice(KEYS)
        head = f"{indent}- " if seq else f"{indent}{key}: "
        if not seq and key.startswith("?"):
            if rng.random() < 0.8:
                continue
            head = f"{indent}{key}\n{indent}: "
        roll = rng.random()
        if not seq and key == "<<":
            merged = rng.choice(sorted(anchors)) if anchors and roll < 0.6 else None
            lines.append(head + (f"*{merged}" if merged else "{m: 1, a: [2]}"))
            continue
        if roll < 0.1 and anchors:
            lines.append(head + "*" + rng.choice(sorted(anchors)))
            continue
        if roll < 0.25:
            anchor = f"a{len(anchors)}"
            anchors.add(anchor)
            head += f"&{anchor} "
        if depth < 4 and roll > 0.7:
            lines.append(head.rstrip() + "\n" + _block(rng, depth + 1, indent + "  ", anchors))
        elif roll > 0.5:
            lines.append(head + _flow(rng, depth))
        else:
            lines.append(head + rng.choice(SCALARS).replace("\n", "\n" + indent + "  "))
    return "\n".join(lines) or f"{indent}k: v"


def _random_texts(count: int, seed: int = 16) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(count):
        docs = [_block(rng, 0, "", set()) for _ in range(1 + rng.randrange(3))]
        yield "\n---\n".join(docs) + "\n"


TRICKY = {
    "merge-list": "b1: &b1 {x: 1}\nb2: &b2 {y: 2}\no:\n  <<: [*b1, *b2]\n  x: 3\n",
    "value-key": "a:\n  =: 1\n  b: 2\n",
    "complex-key": "? [a, b]\n: 1\n",
    "set": "!!set {a, b}\n",
    "omap": "!!omap [a: 1, b: 2]\n",
    "custom-root": "!thing {a: 1}\n",
    "tagged-seq": "a: !!seq [1, 2]\nb: !!map {c: d}\n",
    "seq-tagged-str": "a: !!str [1]\n",
    "anchors-no-alias": "a: &x {b: 1}\nc: &y [1, 2]\n",
    "scalar-root": "--- 12\n--- yes\n--- ~\n--- 'x'\n",
    "empty-docs": "---\n---\na: 1\n---\n",
    "bool-keys": "yes: 1\nno: 2\non: 3\n1: a\n1.0: b\n~: c\n",
    "dup-in-seq": "- {a: 1, a: 2}\n- b: 1\n  b: {c: 1, c: 2}\n",
    "dup-nested-shadow": "a: {x: 1}\na: {y: 2}\n",
    "quoted-merge-dup": "'<<': 1\n'<<': 2\n",
    "long-int-key": "1" + "0" * 5000 + ": a\n",
    "bad-timestamp-value": "a: !!timestamp nope\n",
    "block-scalars": "a: |\n  yes\n  no\nb: >-\n  1\n  2\nc: |+\n\n",
    "json": '{"apiVersion": "v1", "kind": "Pod", "n": [1, 2.5, true, null, "x"]}',
    "deep-under-merge": "b: &b {x: 1}\no: {<<: *b}\n" + "d: " + "[" * 120 + "]" * 120 + "\n",
    "deep-plain": "d: " + "[" * 101 + "]" * 101 + "\n",
    "at-depth": "d: " + "[" * 99 + "]" * 99 + "\n",
}


def _read(text: str, file: str, *, one_walk: bool, libyaml: bool) -> Any:
    saved = yamlbuild.ENABLED, yamlreader.USE_LIBYAML_COMPOSER, yamlreader.RESOLVED_KEPT
    yamlbuild.ENABLED, yamlreader.USE_LIBYAML_COMPOSER = one_walk, libyaml
    if not one_walk:
        yamlreader.RESOLVED_KEPT = 0  # PyYAML's resolver for every scalar: nothing remembered is used
        remembered = dict(yamlreader._resolved)
        yamlreader._resolved.clear()
    try:
        docs, duplicated, broken = parse_prefix(text, file, DEFAULT_LIMITS)
    except LoadError as err:
        return ("raised", err.problems)
    finally:
        yamlbuild.ENABLED, yamlreader.USE_LIBYAML_COMPOSER, yamlreader.RESOLVED_KEPT = saved
        if not one_walk:
            yamlreader._resolved.update(remembered)
    # repr: types count (1, 1.0 and True differ), key order counts, and NaN equals itself.
    located = [(repr(d.data), d.file, d.line, d.index, list(d.positions.items())) for d in docs]
    return located, duplicated, broken


def _same(text: str, file: str) -> Any:
    for libyaml in (True, False):
        generic = _read(text, file, one_walk=False, libyaml=libyaml)
        assert _read(text, file, one_walk=True, libyaml=libyaml) == generic, file
    if generic[0] != "raised" and generic[2] is None and not generic[1]:
        try:
            expected = [repr(d) for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
        except yaml.YAMLError:
            expected = None  # a long integer PyYAML builds but the loader refuses
        if expected is not None and not file.endswith(".json"):
            assert [d[0] for d in generic[0]] == expected, file
    return generic


def _built(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each document read took the one walk (True) or the generic route (False)."""
    taken: list[bool] = []
    real = yamlbuild.build

    def spy(*args: Any) -> Any:
        out = real(*args)
        if yamlbuild.ENABLED:  # the generic reading of the comparison is not counted
            taken.append(out is not None)
        return out

    monkeypatch.setattr("policyengine.loader.build", spy)
    return taken


def _files(*folders: Path) -> list[Path]:
    found = [p for folder in folders if folder.is_dir() for p in folder.rglob("*")]
    return sorted(p for p in found if p.suffix in (".yaml", ".yml", ".json") and p.is_file())


def test_the_repository_and_shared_manifests_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _built(monkeypatch)
    files = _files(ROOT / "tests", ROOT / "examples", ROOT / "policies", ROOT / "deploy", SHARED)
    assert len(files) > 200
    for path in files:
        if path.stat().st_size <= 4 * 1024 * 1024:
            _same(path.read_text(encoding="utf-8", errors="replace"), str(path))
    assert taken.count(True) > 0.8 * len(taken)  # the one walk, not the generic route, was compared


@pytest.mark.parametrize("name", sorted({**HOSTILE, **TRICKY}))
def test_hostile_and_tricky_yaml_reads_the_same(name: str) -> None:
    _same({**HOSTILE, **TRICKY}[name], f"{name}.yaml")


def test_random_yaml_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _built(monkeypatch)
    for i, text in enumerate(_random_texts(1500)):
        _same(text, f"random-{i}.yaml")
    assert taken.count(True) > 100 and taken.count(False) > 100  # both routes met


def test_a_plain_manifest_takes_the_one_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _built(monkeypatch)
    docs = parse_prefix("a: 1\nb: [x, {c: yes}]\n---\ne: 2\n", "plain.yaml")[0]
    assert [d.data for d in docs] == [{"a": 1, "b": ["x", {"c": True}]}, {"e": 2}]
    assert docs[0].positions[("b", 1, "c")] == (2, 9)
    assert taken == [True, True]


def test_remembered_tags_are_bounded() -> None:
    yamlreader._resolved.clear()
    parse_prefix("".join(f"k{i}: v{i}\n" for i in range(yamlreader.RESOLVED_KEPT + 50)), "many.yaml")
    parse_prefix("a: " + "x" * (yamlreader.RESOLVED_LENGTH + 1) + "\n", "long.yaml")
    assert len(yamlreader._resolved) == yamlreader.RESOLVED_KEPT
    assert all(len(text) <= yamlreader.RESOLVED_LENGTH for text in yamlreader._resolved)
