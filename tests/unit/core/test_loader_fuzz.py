"""Fuzzing the loader with hostile YAML: whatever the text, ``parse_text`` returns documents or raises
LoadError whose problems name the file, and what it returns is bounded by what was written.

Texts are built from pieces that attack a YAML reader: anchors and aliases (nested, recursive, used as
keys, merged), deep nesting, long scalars and integers, explicit and unknown tags, invalid and unusual
unicode, repeated keys, document markers and directives. Derandomised so that CI runs the same cases.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyengine.errors import LoadError
from policyengine.loader import InputLimits, parse_text

FILE = "fuzz.yaml"
LIMITS = InputLimits(max_bytes=1 << 20, max_documents=50)

_ANCHORS = ["a", "b", "c"]
_SCALARS = st.sampled_from(
    [
        "x",
        "1",
        "-0x1F",
        "0o17",
        "1:30:00",
        "1_000",
        "3.5e+3",
        ".inf",
        ".NaN",
        "~",
        "null",
        "yes",
        "2001-12-14t21:59:43.10-05:00",
        "2024-13-45",
        "'quoted ''x'''",
        '"\\u0000\\ud800\\x85"',
        '"\\U0001F600"',
        "é€😀",
        "\u200b\ufeff",
        "\x85\u2028",
        "\ud800",
        "\x00",
        "\x1b[31m",
        "1" * 5000,
        "1" + ":0" * 3000,
        "x" * 20000,
        "<<",
    ]
)
_TAGS = st.sampled_from(
    [
        "!!str ",
        "!!int ",
        "!!float ",
        "!!bool ",
        "!!binary ",
        "!!timestamp ",
        "!!set ",
        "!!omap ",
        "!!pairs ",
        "!!map ",
        "!!seq ",
        "!!python/object:os.system ",
        "!!python/name:os.system ",
        "!custom ",
        "!<tag:example.com,2024:x> ",
        "",
    ]
)


@st.composite
def _flow(draw: st.DrawFn, depth: int = 0) -> str:
    """One flow-style YAML value, possibly anchored, tagged or an alias."""
    choice = draw(st.integers(0, 9 if depth < 4 else 2))
    if choice <= 1:
        value = draw(_SCALARS)
    elif choice == 2:
        value = "*" + draw(st.sampled_from(_ANCHORS))
    elif choice <= 5:
        items = draw(st.lists(_flow(depth + 1), max_size=9))
        value = "[" + ", ".join(items) + "]"
    else:
        keys = draw(st.lists(st.one_of(_SCALARS, _flow(depth + 1)), max_size=6))
        values = draw(st.lists(_flow(depth + 1), min_size=len(keys), max_size=len(keys)))
        value = "{" + ", ".join(f"? {k} : {v}" for k, v in zip(keys, values, strict=True)) + "}"
    if choice != 2 and draw(st.booleans()):
        value = f"&{draw(st.sampled_from(_ANCHORS))} {value}"
    return draw(_TAGS) + value


_LINE = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["kind", "spec", "<<", "x", "x", "'x'"]), _flow()),
    st.builds(lambda v: f"- {v}", _flow()),
    st.builds(lambda k: f"? {k}\n: v", _flow()),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(90, 1200)),
    st.builds(lambda n: "".join(" " * i + "k:\n" for i in range(n)) + " " * n + "v", st.integers(90, 300)),
    st.builds(lambda n: f"l0: &l0 [x, x, x, x, x, x, x, x, x]\n{_laughs(n)}", st.integers(2, 9)),
    st.sampled_from(
        [
            "---",
            "...",
            "%YAML 1.1\n---",
            "%TAG ! tag:x,2024:\n---",
            "--- |\n  text",
            "a: |-\n  x\n b",
            "\t- x",
        ]
    ),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


def _laughs(levels: int) -> str:
    return "\n".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels))


def _tree_size(value: Any, cap: int) -> int:
    """Nodes of ``value`` walked as a tree (aliases expanded), counting no further than ``cap``."""
    count, stack = 0, [value]
    while stack and count <= cap:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return count


def _check(text: str) -> None:
    try:
        docs = parse_text(text, FILE, LIMITS)
    except LoadError as err:
        assert err.problems
        for problem in err.problems:
            assert problem.file == FILE and problem.line >= 1 and problem.code and problem.message
            assert len(problem.message) < 2000  # messages name things, they do not render them
        return
    assert len(docs) <= LIMITS.max_documents
    # Accepted aliasing stays within go-yaml's ratio: at most 99 nodes through aliases per node written.
    bound = 100 * (len(text) + 1) + 1100
    for doc in docs:
        assert len(doc.positions) <= len(text) + 1
        assert _tree_size(doc.data, bound) <= bound


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_LINE, min_size=1, max_size=12).map("\n".join))
def test_hostile_yaml_only_ever_raises_load_error_and_stays_bounded(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("[]{}:,-?&*!|>'\"#%@`\n\t ab1<")), max_size=200))
def test_yaml_punctuation_soup_only_ever_raises_load_error(text: str) -> None:
    _check(text)


def test_known_hostile_texts() -> None:
    for text in (
        "&a [*a]",
        "&a {<<: *a}",
        "? &a [x]\n: 1\n? *a\n: 2",
        "a: !!binary ZZZ",
        "a: !!python/object/apply:os.system [echo]",
        "a: 1" + ":0" * 300_000,
        "l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + _laughs(9),
        "[" * 100_000,
        "x: \ud800",
        "\x00",
    ):
        _check(text)
