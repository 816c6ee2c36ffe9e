"""What the loader learns from a composed YAML node graph before and after construction: whether its
anchors and aliases expand within bounds, which mapping keys repeat, and where every field sits.

PyYAML shares an aliased node instead of copying it, so a few hundred bytes of nested aliases
("billion laughs") describe a tree of billions of nodes that every later walker would expand. The
bound follows Kubernetes' own YAML decoder (go-yaml ``decode.go``): count every node a tree walk
would visit and the share of them reached through an alias, and refuse a file whose alias-driven
share passes a ratio that tightens as the file grows. Walks here are iterative and memoised by node,
so their cost follows the bytes written, never the expanded tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from policyengine import errors
from policyengine.errors import Problem
from policyengine.memo import interned

PathKey = tuple[str | int, ...]

# go-yaml's figures: up to 400,000 visited nodes, 99% may come from aliases; from 4,000,000 on, 10%.
ALIAS_RATIO_LOW = 400_000
ALIAS_RATIO_HIGH = 4_000_000
# Deeper documents are refused, written or reached through aliases: evaluation and reporting walk
# values recursively, and no Kubernetes object comes near this depth.
MAX_DEPTH = 100


def allowed_alias_ratio(visited: int) -> float:
    if visited <= ALIAS_RATIO_LOW:
        return 0.99
    if visited >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (visited - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


@dataclass
class Expansion:
    """Nodes a tree walk of one file's documents visits, and how many of them through an alias."""

    visited: int = 0
    aliased: int = 0

    def excessive(self) -> bool:
        return (
            self.aliased > 100
            and self.visited > 1000
            and self.aliased / self.visited > allowed_alias_ratio(self.visited)
        )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _children_blamed(node: yaml.Node, via: int) -> list[tuple[yaml.Node, int]]:
    """The children of a collection in document order, each with the line to blame if it is an alias:
    a mapping value its key's line, anything else its collection's (inside an alias, the alias's)."""
    here = via or _line(node)
    if isinstance(node, yaml.MappingNode):
        return [(n, line) for k, v in node.value for n, line in ((k, here), (v, via or _line(k)))]
    if isinstance(node, yaml.SequenceNode):
        return [(item, here) for item in node.value]
    return []


def check_expansion(file: str, root: yaml.Node, expansion: Expansion) -> Problem | None:
    """Walk ``root`` as the tree it stands for, in document order, until a bound is passed.

    A node met again outside an alias expansion is an alias: it and everything under it count as
    alias-driven, blamed on the line of the collection (or key) that holds the alias, since the
    composed graph keeps only the anchor's position. The walk stops at the first bound passed, so its
    cost is bounded by the bound, not by the expanded size."""
    seen: set[int] = set()
    open_: set[int] = set()  # collections on the current path: meeting one again is a recursion
    # (node, depth, line blamed if the node is an alias, line of the alias being expanded or 0, leaving)
    stack: list[tuple[yaml.Node, int, int, int, bool]] = [(root, 1, _line(root), 0, False)]
    while stack:
        node, depth, where, via, leaving = stack.pop()
        if leaving:
            open_.discard(id(node))
            continue
        if id(node) in open_:
            return Problem(
                file, via or where, errors.YAML_SYNTAX, "an alias refers to a collection that contains it"
            )
        if not via and id(node) in seen:
            via = where
        seen.add(id(node))
        expansion.visited += 1
        expansion.aliased += 1 if via else 0
        if depth > MAX_DEPTH:
            message = f"nesting deeper than {MAX_DEPTH} levels"
            return Problem(file, via or _line(node), errors.YAML_SYNTAX, message)
        if expansion.excessive():
            message = (
                f"excessive aliasing: {expansion.aliased} of the first {expansion.visited} nodes "
                "come through aliases"
            )
            return Problem(file, via, errors.YAML_SYNTAX, message)
        children = _children_blamed(node, via)
        if children:
            open_.add(id(node))
            stack.append((node, depth, where, via, True))
            stack.extend((child, depth + 1, line, via, False) for child, line in reversed(children))
    return None


def key_text(node: yaml.Node) -> str:
    """A mapping key as a path element. A collection used as a key is named, never rendered: its
    text could be an alias expansion of any size."""
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    kind = "mapping" if isinstance(node, yaml.MappingNode) else "sequence"
    return f"<{kind} key at line {_line(node)}>"


def duplicate_keys(file: str, root: yaml.Node) -> list[Problem]:
    """kubectl and kube-apiserver reject a mapping that repeats a key, while YAML readers silently keep
    the last one, so a policy would judge an object the cluster never accepts: each repeat is a problem.
    Run on the composed node, before construction flattens ``<<`` merges (an override is no repeat)."""
    problems: list[Problem] = []
    seen: set[int] = set()  # aliased nodes are checked once
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, _ in node.value:
                key = key_text(key_node)
                line = _line(key_node)
                if key in first and key != "<<":
                    message = f"mapping key {key!r} is already defined at line {first[key]}"
                    problems.append(
                        Problem(file, line, errors.YAML_SYNTAX, message, render_path((*path, key)))
                    )
                first.setdefault(key, line)
            stack.extend((v, (*path, key_text(k))) for k, v in reversed(node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(node.value))))
    return sorted(problems, key=lambda p: p.line)


# Documents of one tree repeat the same field paths and (line, column) pairs: each is kept once, up to
# this many distinct ones (past it, a new one is kept as it is), so a large tree's position tables share
# their keys and values instead of holding a copy per document.
SHARED_POSITIONS = 50_000
_shared: dict[object, object] = {}


def _share(value: Any) -> Any:
    return interned(_shared, value, SHARED_POSITIONS)


share = _share  # for the one-walk builder (policyengine.yamlbuild)


def record_positions(root: yaml.Node) -> dict[PathKey, tuple[int, int]]:
    """(line, column) of every key and item of the constructed document (``<<`` merges flattened).

    Keys point at the key's own line (where a reader looks for "spec.replicas: 40"). Inside an alias
    the walk stops at the alias: fields below it are located at the key that holds the alias, so the
    table grows with the text, not with the expansion."""
    out: dict[PathKey, tuple[int, int]] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue  # an alias met again: its fields are located where the walk first met them
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            entries = [((*path, key_text(k)), k, v) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            entries = [((*path, i), item, item) for i, item in enumerate(node.value)]
        else:
            continue
        for sub, mark_node, _ in entries:
            out[_share(sub)] = _share((_line(mark_node), int(mark_node.start_mark.column) + 1))
        stack.extend((child, sub) for sub, _, child in reversed(entries))  # document order
    return out


def render_path(path: Iterable[str | int]) -> str:
    """("spec", "validations", 2, "expression") -> "spec.validations[2].expression"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
