"""One walk over a composed YAML document that does what the loader otherwise does in four: bound its
nesting, list its repeated keys, construct its value and record the position of every field.

PyYAML's generic constructor dispatches every node through tag lookups, generators and hashability
checks, and the loader then walked the same tree three more times (depth, repeated keys, positions):
together about two thirds of reading a manifest. This walk handles the document shapes manifests are
made of -- mappings with scalar keys, sequences, and scalars tagged str, null, bool, int, float or
timestamp -- and builds each scalar with PyYAML's own constructor for its tag, so values are the same.
Anything else (a merge key ``<<``, a ``=`` key, a collection or an odd tag as a key, ``!!set``,
``!!binary``, a custom tag, a scalar a constructor refuses) makes it give the document back untouched:
the loader then takes the generic route, whose results and messages this walk never has to copy.
Aliases are never seen here: a text holding a ``*`` takes the generic route, with its expansion bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import yaml

from policyengine import errors
from policyengine.errors import Problem
from policyengine.yamlnodes import MAX_DEPTH, PathKey, render_path, share

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SCALAR, _MAPPING = yaml.ScalarNode, yaml.MappingNode
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = tuple(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "timestamp"))
_KEY_TAGS = frozenset((_STR, *_SCALAR_TAGS))
# Set to False to send every document down the generic route (tests compare the two).
ENABLED = True

Positions = dict[PathKey, tuple[int, int]]


class GiveBack(Exception):
    """The document holds something this walk leaves to the generic route."""


def _scalars(loader: Any) -> dict[str, Callable[[Any], Any]]:
    """The loader's own constructor for each plain scalar tag, so a value is built as PyYAML builds it
    (ints through the loader's length bound)."""
    table = type(loader).yaml_constructors
    return {tag: partial(table[tag], loader) for tag in _SCALAR_TAGS}


def build(
    loader: Any, file: str, root: yaml.Node, refuse_depth: Callable[[yaml.Node], None]
) -> tuple[Any, Positions, list[Problem]] | None:
    """``root``'s value, field positions and repeated keys (sorted by line), as the generic route makes
    them; None if the document needs that route. A node nested past ``MAX_DEPTH`` levels makes
    ``refuse_depth(root)`` raise the composer's error for it."""
    if not ENABLED:
        return None
    try:
        return _build(_scalars(loader), file, root, refuse_depth)
    except GiveBack:
        return None


def _scalar(node: yaml.Node, scalars: dict[str, Callable[[Any], Any]]) -> Any:
    if type(node) is not yaml.ScalarNode:
        raise GiveBack
    tag = node.tag
    if tag == _STR:
        return node.value
    make = scalars.get(tag)
    if make is None:
        raise GiveBack
    try:
        return make(node)
    except Exception:  # the generic route raises it, with its message and mark
        raise GiveBack from None


def _build(
    scalars: dict[str, Callable[[Any], Any]],
    file: str,
    root: yaml.Node,
    refuse_depth: Callable[[yaml.Node], None],
) -> tuple[Any, Positions, list[Problem]]:
    if type(root) is yaml.ScalarNode:
        return _scalar(root, scalars), {}, []
    top = _empty(root)
    positions: Positions = {}
    problems: list[Problem] = []
    # (node, its empty container, its path, its depth): containers are filled in document order.
    stack: list[tuple[Any, Any, PathKey, int]] = [(root, top, (), 1)]
    while stack:
        node, into, path, depth = stack.pop()
        children: list[tuple[Any, Any, PathKey, int]] = []
        if node.value and depth >= MAX_DEPTH:
            refuse_depth(root)
        if type(node) is _MAPPING:
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if type(key_node) is not _SCALAR or key_node.tag not in _KEY_TAGS:
                    raise GiveBack  # merge and value keys, collections and odd tags as keys
                text = key_node.value
                mark = key_node.start_mark
                line = mark.line + 1
                sub = share((*path, text))
                if text in first and text != "<<":
                    message = f"mapping key {text!r} is already defined at line {first[text]}"
                    problems.append(Problem(file, line, errors.YAML_SYNTAX, message, render_path(sub)))
                first.setdefault(text, line)
                positions[sub] = share((line, mark.column + 1))
                key = key_node.value if key_node.tag == _STR else _scalar(key_node, scalars)
                if type(value_node) is _SCALAR and value_node.tag == _STR:
                    into[key] = value_node.value  # the most common entry, without a call
                else:
                    into[key] = _child(value_node, sub, depth, children, scalars)
        else:
            for i, item in enumerate(node.value):
                mark = item.start_mark
                sub = share((*path, i))
                positions[sub] = share((mark.line + 1, mark.column + 1))
                into.append(_child(item, sub, depth, children, scalars))
        stack.extend(reversed(children))
    problems.sort(key=lambda p: p.line)
    return top, positions, problems


def _child(
    node: Any,
    path: PathKey,
    depth: int,
    children: list[tuple[Any, Any, PathKey, int]],
    scalars: dict[str, Callable[[Any], Any]],
) -> Any:
    if type(node) is yaml.ScalarNode:
        return node.value if node.tag == _STR else _scalar(node, scalars)
    made = _empty(node)
    children.append((node, made, path, depth + 1))
    return made


def _empty(node: Any) -> Any:
    kind = type(node)
    if kind is yaml.MappingNode and node.tag == _MAP:
        return {}
    if kind is yaml.SequenceNode and node.tag == _SEQ:
        return []
    raise GiveBack  # !!set, !!omap, !!pairs, custom tags, a collection tagged as a scalar
