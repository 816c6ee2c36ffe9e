"""Hostile input to the loader: every bound is a load problem naming the file and line, never a crash,
and what it costs follows the bytes written (aliases, nesting, integers, sizes, document counts)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from policyengine import errors
from policyengine.errors import LoadError, Problem
from policyengine.loader import STDIN, InputLimits, parse_text, read_documents, read_text
from policyengine.policyset import load_policy_set
from policyengine.yamlnodes import ALIAS_RATIO_LOW, MAX_DEPTH, Expansion, check_expansion
from policyengine.yamlreader import MAX_INT_CHARS


def laughs(levels: int, width: int = 9) -> str:
    """The "billion laughs": each level an anchored list of ``width`` aliases of the level before."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "data:"]
    lines.append("  l0: &l0 [" + ", ".join(['"lol"'] * width) + "]")
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def problem_of(text: str, file: str = "bomb.yaml", limits: InputLimits | None = None) -> Problem:
    with pytest.raises(LoadError) as info:
        parse_text(text, file) if limits is None else parse_text(text, file, limits)
    (problem,) = info.value.problems
    return problem


def test_billion_laughs_is_refused_as_excessive_aliasing_at_its_line() -> None:
    # 9^9 lists of nine: billions of nodes from 500 bytes. The walk stops at the bound, not the bottom.
    text = laughs(9)
    assert len(text) < 600
    problem = problem_of(text)
    assert (problem.file, problem.code) == ("bomb.yaml", errors.YAML_SYNTAX)
    assert "excessive aliasing" in problem.message
    assert 5 < problem.line <= 13  # a line holding aliases, not the top of the file


def test_the_alias_bound_counts_nodes_like_kubernetes_decoder() -> None:
    # go-yaml's rule: past 1000 nodes and 100 aliased ones, at most 99% may come through aliases.
    text = laughs(3)  # 9 + 90 + 900 aliased nodes: below 1000 in all, accepted
    (doc,) = parse_text(text, "ok.yaml")
    assert len(doc.data["data"]["l2"]) == 9
    expansion = Expansion()
    node = yaml.compose(laughs(6), Loader=yaml.SafeLoader)  # 600,000 nodes expanded
    assert check_expansion("f", node, expansion) is not None
    # The walk stopped at the first node past the bound, not at the bottom of the expansion.
    assert 1000 < expansion.visited < 3000
    assert expansion.aliased / expansion.visited > 0.99


def test_aliases_that_a_real_file_uses_are_accepted_with_their_positions() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: &labels {app: x, team: y}\n"
        "spec:\n  nodeSelector: *labels\n  containers:\n  - &c {name: a, image: x}\n  - *c\n"
    )
    (doc,) = parse_text(text, "p.yaml")
    assert doc.data["spec"]["nodeSelector"] == {"app": "x", "team": "y"}
    assert doc.line_of(("metadata", "labels", "team")) == 5
    assert doc.line_of(("spec", "nodeSelector", "team")) == 7  # inside an alias: the alias's key
    assert doc.line_of(("spec", "containers", 1)) == 9


def test_positions_grow_with_the_text_not_with_the_expansion() -> None:
    # Written nodes first, as go-yaml counts in document order: then 99 aliased nodes per written one
    # pass. ~270,000 nodes through aliases are accepted, and only the ~5,000 written ones located.
    pad = "".join(f"  pad{i}: [{', '.join(['x'] * 40)}]\n" for i in range(120))
    text = laughs(5, width=12).replace("data:\n", "data:\n" + pad)
    (doc,) = parse_text(text, "wide.yaml")
    assert len(doc.data["data"]["l4"][0][0][0][0]) == 12
    assert len(doc.positions) < 6_000


def test_a_merge_key_bomb_is_refused() -> None:
    lines = ["a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8}"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}]}}")
    problem = problem_of("\n".join(lines) + "\n")
    assert "excessive aliasing" in problem.message


def test_a_recursive_alias_is_refused() -> None:
    problem = problem_of("apiVersion: v1\nkind: List\nitems: &items\n- x\n- *items\n")
    assert problem.line == 3 and "contains it" in problem.message
    assert "contains it" in problem_of("a: &m {self: *m}\n").message


def test_nesting_past_the_depth_bound_is_refused_with_its_line() -> None:
    deep = "x: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    problem = problem_of("a: 1\n" + deep)
    assert (problem.line, problem.code) == (2, errors.YAML_SYNTAX)
    assert f"deeper than {MAX_DEPTH}" in problem.message
    ok = "x: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n"
    assert parse_text(ok, "ok.yaml")


def test_long_integers_are_refused_before_they_are_built() -> None:
    # A sexagesimal integer is built in quadratic time: 600 KB of "1:0:0:..." would take seconds.
    problem = problem_of("a: 1\nb: 1" + ":0" * 300_000 + "\n")
    assert problem.line == 2 and f"at most {MAX_INT_CHARS}" in problem.message
    assert parse_text("b: " + "9" * 4000 + "\n", "ok.yaml")[0].data["b"] > 0


def test_a_collection_used_as_a_key_is_named_not_rendered() -> None:
    problem = problem_of(laughs(3) + "  ? *l2\n  : x\n  ? *l2\n  : y\n")
    assert "unhashable" in problem.message or "already defined" in problem.message
    assert len(problem.render()) < 300


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: the test costs no disk, and the loader reads only the bound
        handle.truncate(InputLimits().max_bytes + 1)
    with pytest.raises(LoadError) as info:
        read_text(str(big))
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.code) == (str(big), 1, errors.READ_ERROR)
    assert "larger than the input size limit of 32 MiB" in problem.message
    small = tmp_path / "small.yaml"
    small.write_text("a: 1\n" * 300)
    assert read_text(str(small), limits=InputLimits(max_bytes=1500)) == "a: 1\n" * 300
    with pytest.raises(LoadError, match="larger than the input size limit of 1 KiB"):
        read_text(str(small), limits=InputLimits(max_bytes=1024))


@pytest.mark.parametrize("binary", [True, False])
def test_stdin_past_the_size_limit_is_refused(binary: bool) -> None:
    data = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n" * 100
    stream = io.TextIOWrapper(io.BytesIO(data)) if binary else io.StringIO(data.decode())
    with pytest.raises(LoadError) as info:
        read_documents([STDIN], stdin=stream, stdin_ok=True, limits=InputLimits(max_bytes=1000))
    (problem,) = info.value.problems
    assert problem.file == "<stdin>" and "input size limit of 1000 bytes" in problem.message


def test_a_file_of_too_many_documents_is_refused_at_the_first_one_past_the_cap() -> None:
    text = "".join(f"---\nkind: Namespace\nmetadata: {{name: n{i}}}\n" for i in range(12))
    problem = problem_of(text, limits=InputLimits(max_documents=10))
    assert (problem.line, problem.code) == (32, errors.READ_ERROR)
    assert "more than 10 documents" in problem.message
    assert len(parse_text(text, "ok.yaml", InputLimits(max_documents=12))) == 12


def test_a_file_of_too_many_nodes_stops_while_it_is_read() -> None:
    # Small lines hold many nodes: 30 MiB of "- a" were five million nodes and 4 GB. A file may hold one
    # node per 16 bytes of the size limit, counted as the nodes are built.
    limits = InputLimits(max_bytes=16_000)
    assert limits.max_nodes == 1000
    text = "kind: ConfigMap\ndata:\n" + "- a\n" * 1200  # 4,822 bytes: within the size limit
    problem = problem_of(text, limits=limits)
    # Five nodes before the list items (mapping, two keys, a value, the list): item 996, on line 998.
    assert (problem.line, problem.code) == (998, errors.YAML_SYNTAX)
    assert "more than 1000 YAML nodes in one file" in problem.message
    assert parse_text(text, "ok.yaml", InputLimits(max_bytes=40_000))


def test_policy_and_config_files_share_the_size_limit(tmp_path: Path) -> None:
    policy = tmp_path / "pol" / "p.yaml"
    policy.parent.mkdir()
    policy.write_text("# padding\n" * 200)
    config = tmp_path / "config.yaml"
    config.write_text("# padding\n" * 200)
    with pytest.raises(LoadError) as info:
        load_policy_set(
            [str(policy.parent)],
            config_paths=[str(config)],
            include_bundled=False,
            limits=InputLimits(max_bytes=1000),
        )
    assert [(p.file, p.code) for p in info.value.problems] == [
        (str(policy), errors.READ_ERROR),
        (str(config), errors.READ_ERROR),
    ]


def test_a_list_of_many_items_keeps_its_item_lines() -> None:
    # Positions are split per item in one pass (a List of 20,000 items used to be quadratic).
    items = "".join(f"- kind: Namespace\n  metadata: {{name: n{i}}}\n" for i in range(20_000))
    from policyengine.loader import expand_lists

    docs = list(expand_lists(parse_text("apiVersion: v1\nkind: List\nitems:\n" + items, "l.yaml")))
    assert len(docs) == 20_000
    assert docs[-1].line == 3 + 2 * 19_999 + 1
    assert docs[-1].line_of(("metadata", "name")) == docs[-1].line + 1


def test_the_alias_ratio_tightens_as_the_file_grows() -> None:
    from policyengine.yamlnodes import ALIAS_RATIO_HIGH, allowed_alias_ratio

    assert allowed_alias_ratio(ALIAS_RATIO_LOW) == 0.99
    assert allowed_alias_ratio(ALIAS_RATIO_HIGH) == pytest.approx(0.10)
    assert 0.10 < allowed_alias_ratio((ALIAS_RATIO_LOW + ALIAS_RATIO_HIGH) // 2) < 0.99
