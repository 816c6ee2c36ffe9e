"""Which GPU products and MIG profiles a DRA device request selects, read from its CEL device selectors.

A request selects values of a string attribute the GPU drivers publish (the product,
``device.attributes['gpu.nvidia.com'].productName``; the MIG profile, ``...['gpu.nvidia.com'].profile``)
only by comparing it with ``==`` to a string (either side) or testing it with ``in`` against a list of
strings; ``||`` of such terms allows the union, ``&&`` with other terms keeps them (the other terms only
narrow the devices further), and several selectors of one request must all hold (their sets intersect).
Anything else selects no value, and the answer carries the expression that could not be read.

The expressions are parsed with cel-python's parser, the one the policy engine compiles CEL with; they
are never pattern-matched as text. Product names are normalised to the node-label form GPU Feature
Discovery writes on ``nvidia.com/gpu.product`` (runs of whitespace become one ``-``: "NVIDIA H100 80GB
HBM3" is ``NVIDIA-H100-80GB-HBM3``), so one ``products`` allowlist holds for both DRA and node selectors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy.celparser import CELParseError
from celpy.evaluation import celstr

from policyengine.cel.syntax import drop_trailing_commas, literal_token, simple_ident, unwrap

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION",
    "MAX_LIST",
    "MAX_PARSED",
    "MAX_SELECTORS",
    "PRODUCT_ATTRIBUTES",
    "PROFILE_ATTRIBUTES",
    "ProductSelection",
    "SelectorBudget",
    "product_label",
    "selected_products",
    "selected_profiles",
]

# Kubernetes' own bounds on a DRA request: 32 selectors, each CEL expression at most 10 KiB.
MAX_SELECTORS = 32
MAX_EXPRESSION = 10 * 1024
# Bounds of ours on what is read: how deep the parse tree and how long a product list may be.
MAX_DEPTH = 200
MAX_LIST = 128
# Selector text parsed for one workload (or one claim object of the inventory): parsing costs about 50 us
# a character, so this keeps the worst case near a second; what lies beyond is read as selecting nothing.
MAX_PARSED = 32 * 1024
# (domain, attribute) pairs that name the GPU product and the MIG profile.
PRODUCT_ATTRIBUTES = frozenset({("gpu.nvidia.com", "productName")})
PROFILE_ATTRIBUTES = frozenset({("gpu.nvidia.com", "profile")})

_WHITESPACE = re.compile(r"\s+")
_STRINGS = frozenset({"STRING_LIT", "MLSTRING_LIT"})


@dataclass(frozen=True)
class ProductSelection:
    """``pinned`` with the ``allowed`` products (node-label form, sorted), or not pinned with ``unread``:
    the expression that selects no product (or "" when the request has no selector) and why."""

    pinned: bool
    allowed: tuple[str, ...] = ()
    unread: str = ""
    reason: str = ""

    def view(self, path: str) -> dict[str, Any]:
        """The shape of a template's ``gpuProducts`` (as node selectors give it), plus ``unread``."""
        return {
            "pinned": self.pinned,
            "allowed": list(self.allowed),
            "excluded": [],
            "path": path,
            "unread": self.unread,
            "reason": self.reason,
        }


class SelectorBudget:
    """Characters of selector text still to be parsed; shared by every request of one workload."""

    def __init__(self, chars: int = MAX_PARSED) -> None:
        self.left = chars
        self.exceeded = False  # some selector was left unread

    def take(self, source: str) -> bool:
        if len(source) > self.left:
            self.left, self.exceeded = 0, True
            return False
        self.left -= len(source)
        return True


@dataclass(frozen=True)
class _Attribute:
    """The string attribute being read: its (domain, name) pairs, what messages call it, its normal form."""

    names: frozenset[tuple[str, str]]
    noun: str
    normal: Callable[[str], str]


class _Unreadable(Exception):
    """A term that selects no value set we can name."""


def product_label(name: str) -> str:
    """A product name in the node-label form: trimmed, each run of whitespace one ``-``."""
    return _WHITESPACE.sub("-", name.strip())


_PRODUCT = _Attribute(PRODUCT_ATTRIBUTES, "product", product_label)
_PROFILE = _Attribute(PROFILE_ATTRIBUTES, "profile", str.strip)


def selected_products(expressions: Sequence[Any], budget: SelectorBudget | None = None) -> ProductSelection:
    """The products a device request's selector expressions (``selectors[].cel.expression``) allow."""
    return _selected(expressions, _PRODUCT, budget)


def selected_profiles(expressions: Sequence[Any], budget: SelectorBudget | None = None) -> ProductSelection:
    """The MIG profiles (``1g.5gb``) a device request's selector expressions allow, read as products are."""
    return _selected(expressions, _PROFILE, budget)


def _selected(
    expressions: Sequence[Any], attr: _Attribute, budget: SelectorBudget | None
) -> ProductSelection:
    if not expressions:
        return ProductSelection(False, reason=f"no CEL selector names a {attr.noun}")
    if len(expressions) > MAX_SELECTORS:
        return ProductSelection(False, reason=f"more than {MAX_SELECTORS} selectors")
    allowed: set[str] | None = None
    unread: list[tuple[str, str]] = []
    for source in expressions:
        if budget is not None and isinstance(source, str) and not budget.take(source):
            unread.append(
                (_shown(source), f"the selectors exceed the {MAX_PARSED} characters read per workload")
            )
            continue
        values = _values_of(source, attr)
        if isinstance(values, str):
            unread.append((_shown(source), values))
            continue
        allowed = values if allowed is None else allowed & values
    if allowed is None:
        shown, reason = unread[0]
        return ProductSelection(False, unread=shown, reason=reason)
    return ProductSelection(True, allowed=tuple(sorted(allowed)))


def _shown(source: Any) -> str:
    text = source if isinstance(source, str) else repr(source)
    return text if len(text) <= 200 else text[:199] + "…"


def _values_of(source: Any, attr: _Attribute) -> set[str] | str:
    """The value set one expression pins, or the reason (a str) it pins none."""
    if isinstance(source, str) and len(source) <= MAX_EXPRESSION:
        found = _cached(source, attr)  # the same selector repeats across requests and pods
        return found if isinstance(found, str) else set(found)
    return _read(source, attr)


@functools.lru_cache(maxsize=256)
def _cached(source: str, attr: _Attribute) -> frozenset[str] | str:
    found = _read(source, attr)
    return found if isinstance(found, str) else frozenset(found)


def _read(source: Any, attr: _Attribute) -> set[str] | str:
    if not isinstance(source, str):
        return "the selector expression is not a string"
    if len(source) > MAX_EXPRESSION:
        return f"the selector expression is longer than {MAX_EXPRESSION} characters"
    try:
        tree = _parser().compile(drop_trailing_commas(source))
        if _depth(tree) > MAX_DEPTH:
            return f"the selector expression nests deeper than {MAX_DEPTH}"
        found = _conjunction(tree, attr)
    except CELParseError:
        return "the selector expression does not parse as CEL"
    except RecursionError:
        return "the selector expression nests too deeply"
    except _Unreadable as err:
        return str(err)
    if found is None:
        return f"no term compares the {attr.noun} attribute with == or in"
    return found


@functools.cache
def _parser() -> celpy.Environment:
    # The engine's parser (cel-python), built once; the engine's front end reads CEL the same way.
    return celpy.Environment()


def _depth(tree: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(node, lark.Tree):
            stack.extend((child, depth + 1) for child in node.children)
    return deepest


def _conjuncts(tree: Any) -> Iterator[Any]:
    node = unwrap(tree)
    if isinstance(node, lark.Tree) and node.data == "conditionaland" and len(node.children) == 2:
        yield from _conjuncts(node.children[0])
        yield from _conjuncts(node.children[1])
    else:
        yield node


def _conjunction(tree: Any, attr: _Attribute) -> set[str] | None:
    """Values pinned by an ``&&`` chain: the intersection of its terms on the attribute; None when none is."""
    pinned: set[str] | None = None
    for term in _conjuncts(tree):
        products = _disjunction(term, attr)
        if products is not None:
            pinned = products if pinned is None else pinned & products
    return pinned


def _disjunction(tree: Any, attr: _Attribute) -> set[str] | None:
    """An ``||`` pins only when every side does (the union); None when this term names no value."""
    node = unwrap(tree)
    if isinstance(node, lark.Tree) and node.data == "conditionalor" and len(node.children) == 2:
        sides = [_conjunction(side, attr) for side in node.children]
        if any(side is None for side in sides):
            return None
        return set().union(*[s for s in sides if s is not None])
    if isinstance(node, lark.Tree) and node.data == "paren_expr":
        return _conjunction(node.children[0], attr)
    return _comparison(node, attr)


def _comparison(node: Any, attr: _Attribute) -> set[str] | None:
    # cel-python's shape: relation(relation_eq(left), right) for ``left == right``; likewise relation_in.
    if not (isinstance(node, lark.Tree) and node.data == "relation" and len(node.children) == 2):
        return None
    operator, right = node.children
    if not isinstance(operator, lark.Tree) or len(operator.children) != 1:
        return None
    left = operator.children[0]
    if operator.data == "relation_eq":
        for attribute, value in ((left, right), (right, left)):
            if _is_attribute(attribute, attr):
                return {attr.normal(_string(value, attr))}
        return None
    if operator.data == "relation_in" and _is_attribute(left, attr):
        return {attr.normal(_string(v, attr)) for v in _strings(right, attr)}
    return None


def _is_attribute(tree: Any, attr: _Attribute) -> bool:
    """``device.attributes['<domain>'].<name>`` (or ``[...]['<name>']``) for the attribute read."""
    node = unwrap(tree)
    if not isinstance(node, lark.Tree) or len(node.children) != 2:
        return False
    if node.data == "member_dot":
        attribute = str(node.children[1])
    elif node.data == "member_index":
        token = _literal(node.children[1])
        if token is None:
            return False
        attribute = _string(node.children[1], attr)
    else:
        return False
    domain_node = unwrap(node.children[0])
    if not isinstance(domain_node, lark.Tree) or domain_node.data != "member_index":
        return False
    attributes = unwrap(domain_node.children[0])
    if not (
        isinstance(attributes, lark.Tree)
        and attributes.data == "member_dot"
        and str(attributes.children[1]) == "attributes"
        and simple_ident(attributes.children[0]) == "device"
        and _literal(domain_node.children[1]) is not None
    ):
        return False
    return (_string(domain_node.children[1], attr), attribute) in attr.names


def _literal(tree: Any) -> lark.Token | None:
    """The token of a string literal, else None."""
    token = literal_token(tree)
    return token if token is not None and token.type in _STRINGS else None


def _string(tree: Any, attr: _Attribute) -> str:
    token = _literal(tree)
    if token is None:
        raise _Unreadable(f"the {attr.noun} is compared with something other than a string literal")
    return str(celstr(token))


def _strings(tree: Any, attr: _Attribute) -> list[Any]:
    node = unwrap(tree)
    if not isinstance(node, lark.Tree) or node.data != "list_lit":
        raise _Unreadable(f"the {attr.noun} is tested with in against something other than a list literal")
    items = (
        list(node.children[0].children) if node.children and isinstance(node.children[0], lark.Tree) else []
    )
    if len(items) > MAX_LIST:
        raise _Unreadable(f"the {attr.noun} list has more than {MAX_LIST} entries")
    return items
