"""The YAML reader of the loader: libyaml's parser (where PyYAML was built with it) feeding PyYAML's
own composer, so that every node is counted, and every level of nesting, as it is built -- or, for a
text too short to hold more nodes than its budget, libyaml's own composer.

libyaml's built-in composer builds a whole document before Python sees any of it: 30 MiB of ``- a``
lines became five million nodes and 4 GB before any bound could apply. Composing in Python costs
about a third more time and lets a file stop at its node budget. A text of n bytes holds at most about
n nodes (``{a,b,c}``: a key and an empty value per two bytes), so a text of at most a quarter of the
budget in bytes cannot pass it, and libyaml composes it (its scanner refuses nesting past 1,000 levels,
so its recursion is bounded; the loader's walk then applies the 100-level bound). Both composers keep
every node's line and column. Integers are bounded in length too: PyYAML builds a sexagesimal
``1:0:0:...`` in quadratic time.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor

from policyengine.yamlnodes import MAX_DEPTH

# Python refuses to print an int of more digits than this; a longer YAML integer is refused unbuilt.
MAX_INT_CHARS = 4300

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is several times faster
# A text of at most max_nodes / NODES_PER_BYTE bytes is composed by libyaml (margin over the ~1 seen).
NODES_PER_BYTE = 4
USE_LIBYAML_COMPOSER = bool(getattr(yaml, "__with_libyaml__", False))


# Plain scalars' resolved tags, kept for short texts up to a count: a tree of manifests repeats the same
# keys and values ("name", "image", "true"), and resolving one tries up to six regular expressions.
RESOLVED_KEPT = 10_000
RESOLVED_LENGTH = 64
_resolved: dict[str, str] = {}
_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS: dict[type[yaml.Node], str] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


class _RememberedResolver(_Base):  # type: ignore[misc]
    """PyYAML's resolver, its answers for plain scalars remembered. Its answer for one depends on the
    text alone (these loaders have no path resolvers), so a remembered one is the one it would give."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if self.yaml_path_resolvers:
            return str(super().resolve(kind, value, implicit))
        if kind is not yaml.ScalarNode:
            return _COLLECTION_TAGS[kind]  # what PyYAML's resolver answers without path resolvers
        if not implicit[0]:
            return _STR_TAG  # quoted, or a block scalar: never resolved to another tag
        tag = _resolved.get(value)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(value) <= RESOLVED_LENGTH and len(_resolved) < RESOLVED_KEPT:
                _resolved[value] = tag
        return tag


class BoundedLoader(_RememberedResolver):
    """PyYAML's safe loader that refuses a file past ``max_nodes`` nodes or ``MAX_DEPTH`` levels."""

    # PyYAML's composer, in place of libyaml's (which builds whole documents out of reach).
    check_node = Composer.check_node
    get_node = Composer.get_node
    compose_document = Composer.compose_document
    compose_scalar_node = Composer.compose_scalar_node
    compose_sequence_node = Composer.compose_sequence_node
    compose_mapping_node = Composer.compose_mapping_node

    def __init__(self, stream: str, max_nodes: int) -> None:
        super().__init__(stream)
        Composer.__init__(self)
        self.max_nodes = max_nodes
        self.nodes = 0  # over the whole file: a budget, not a per-document allowance
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            message = f"more than {self.max_nodes} YAML nodes in one file (raise it with --max-input-size)"
            raise ComposerError(None, None, message, self.peek_event().start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                message = f"nesting deeper than {MAX_DEPTH} levels"
                raise ComposerError(None, None, message, self.peek_event().start_mark)
            return Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1

    def refuse_depth(self, node: yaml.Node) -> None:
        """Nothing to refuse: this composer bounds nesting as it builds."""


class LibyamlLoader(_RememberedResolver):
    """libyaml's parser and composer, PyYAML's safe constructor: for texts within ``composes``."""

    def refuse_depth(self, node: yaml.Node) -> None:
        """Raise the error ``BoundedLoader`` raises while composing ``node`` if it nests too deep. The
        loader calls it on each document before using it (the one-walk builder only when it meets a
        node that deep)."""
        _refuse_depth(node)


def _refuse_depth(root: yaml.Node) -> None:
    """The error ``BoundedLoader`` raises while composing: at the first node, in document order, written
    past ``MAX_DEPTH`` levels (a node met again is an alias, which PyYAML's composer does not descend)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        stack.extend((child, depth + 1) for child in reversed(children))


def composes(text: str, max_nodes: int) -> bool:
    """Whether libyaml may compose ``text``: it is there, and the text cannot hold ``max_nodes`` nodes."""
    return USE_LIBYAML_COMPOSER and len(text) * NODES_PER_BYTE <= max_nodes


def _construct_int(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    if len(node.value) > MAX_INT_CHARS:
        message = f"an integer of {len(node.value)} characters (at most {MAX_INT_CHARS})"
        raise ConstructorError(None, None, message, node.start_mark)
    return SafeConstructor.construct_yaml_int(loader, node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
LibyamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
