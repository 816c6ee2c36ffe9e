"""The YAML reader of the loader: libyaml's parser (where PyYAML was built with it) feeding PyYAML's
own composer, so that every node is counted, and every level of nesting, as it is built.

libyaml's built-in composer builds a whole document before Python sees any of it: 30 MiB of ``- a``
lines became five million nodes and 4 GB before any bound could apply. Composing in Python costs
about a third more time and lets a file stop at its node budget. Integers are bounded in length too:
PyYAML builds a sexagesimal ``1:0:0:...`` in quadratic time.
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


class BoundedLoader(_Base):  # type: ignore[misc]
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


def _construct_int(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    if len(node.value) > MAX_INT_CHARS:
        message = f"an integer of {len(node.value)} characters (at most {MAX_INT_CHARS})"
        raise ConstructorError(None, None, message, node.start_mark)
    return SafeConstructor.construct_yaml_int(loader, node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
