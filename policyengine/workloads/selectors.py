"""Which GPU products a DRA device request selects, read from its CEL device selectors.

A request selects a product only through the product attribute the GPU drivers publish
(``device.attributes['gpu.nvidia.com'].productName``), compared with ``==`` to a string (either side) or
tested with ``in`` against a list of strings; ``||`` of such terms allows the union, ``&&`` with other terms
keeps them (the other terms only narrow the devices further), and several selectors of one request must
all hold (their product sets intersect). Anything else selects no product, and the answer carries the
expression that could not be read.

The expressions are parsed with cel-python's parser, the one the policy engine compiles CEL with; they
are never pattern-matched as text. Product names are normalised to the node-label form GPU Feature
Discovery writes on ``nvidia.com/gpu.product`` (runs of whitespace become one ``-``: "NVIDIA H100 80GB
HBM3" is ``NVIDIA-H100-80GB-HBM3``), so one ``products`` allowlist holds for both DRA and node selectors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
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
    "MAX_SELECTORS",
    "PRODUCT_ATTRIBUTES",
    "ProductSelection",
    "product_label",
    "selected_products",
]

# Kubernetes' own bounds on a DRA request: 32 selectors, each CEL expression at most 10 KiB.
MAX_SELECTORS = 32
MAX_EXPRESSION = 10 * 1024
# Bounds of ours on what is read: how deep the parse tree and how long a product list may be.
MAX_DEPTH = 200
MAX_LIST = 128
# (domain, attribute) pairs that name the GPU product.
PRODUCT_ATTRIBUTES = frozenset({("gpu.nvidia.com", "productName")})

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


class _Unreadable(Exception):
    """A term that selects no product set we can name."""


def product_label(name: str) -> str:
    """A product name in the node-label form: trimmed, each run of whitespace one ``-``."""
    return _WHITESPACE.sub("-", name.strip())


def selected_products(expressions: Sequence[Any]) -> ProductSelection:
    """The products a device request's selector expressions (``selectors[].cel.expression``) allow."""
    if not expressions:
        return ProductSelection(False, reason="no CEL selector names a product")
    if len(expressions) > MAX_SELECTORS:
        return ProductSelection(False, reason=f"more than {MAX_SELECTORS} selectors")
    allowed: set[str] | None = None
    unread: list[tuple[str, str]] = []
    for source in expressions:
        products = _products_of(source)
        if isinstance(products, str):
            unread.append((_shown(source), products))
            continue
        allowed = products if allowed is None else allowed & products
    if allowed is None:
        shown, reason = unread[0]
        return ProductSelection(False, unread=shown, reason=reason)
    return ProductSelection(True, allowed=tuple(sorted(allowed)))


def _shown(source: Any) -> str:
    text = source if isinstance(source, str) else repr(source)
    return text if len(text) <= 200 else text[:199] + "…"


def _products_of(source: Any) -> set[str] | str:
    """The product set one expression pins, or the reason (a str) it pins none."""
    if not isinstance(source, str):
        return "the selector expression is not a string"
    if len(source) > MAX_EXPRESSION:
        return f"the selector expression is longer than {MAX_EXPRESSION} characters"
    try:
        tree = _parser().compile(drop_trailing_commas(source))
        if _depth(tree) > MAX_DEPTH:
            return f"the selector expression nests deeper than {MAX_DEPTH}"
        found = _conjunction(tree)
    except CELParseError:
        return "the selector expression does not parse as CEL"
    except RecursionError:
        return "the selector expression nests too deeply"
    except _Unreadable as err:
        return str(err)
    if found is None:
        return "no term compares the product attribute with == or in"
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


def _conjunction(tree: Any) -> set[str] | None:
    """Products pinned by an ``&&`` chain: the intersection of its product terms; None when none is."""
    pinned: set[str] | None = None
    for term in _conjuncts(tree):
        products = _disjunction(term)
        if products is not None:
            pinned = products if pinned is None else pinned & products
    return pinned


def _disjunction(tree: Any) -> set[str] | None:
    """An ``||`` pins only when every side does (the union); None when this term names no product."""
    node = unwrap(tree)
    if isinstance(node, lark.Tree) and node.data == "conditionalor" and len(node.children) == 2:
        sides = [_conjunction(side) for side in node.children]
        if any(side is None for side in sides):
            return None
        return set().union(*[s for s in sides if s is not None])
    if isinstance(node, lark.Tree) and node.data == "paren_expr":
        return _conjunction(node.children[0])
    return _comparison(node)


def _comparison(node: Any) -> set[str] | None:
    # cel-python's shape: relation(relation_eq(left), right) for ``left == right``; likewise relation_in.
    if not (isinstance(node, lark.Tree) and node.data == "relation" and len(node.children) == 2):
        return None
    operator, right = node.children
    if not isinstance(operator, lark.Tree) or len(operator.children) != 1:
        return None
    left = operator.children[0]
    if operator.data == "relation_eq":
        for attribute, value in ((left, right), (right, left)):
            if _is_product(attribute):
                return {product_label(_string(value))}
        return None
    if operator.data == "relation_in" and _is_product(left):
        return {product_label(_string(v)) for v in _strings(right)}
    return None


def _is_product(tree: Any) -> bool:
    """``device.attributes['<domain>'].<attr>`` (or ``[...]['<attr>']``) for a product attribute."""
    node = unwrap(tree)
    if not isinstance(node, lark.Tree) or len(node.children) != 2:
        return False
    if node.data == "member_dot":
        attribute = str(node.children[1])
    elif node.data == "member_index":
        token = _literal(node.children[1])
        if token is None:
            return False
        attribute = _string(node.children[1])
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
    return (_string(domain_node.children[1]), attribute) in PRODUCT_ATTRIBUTES


def _literal(tree: Any) -> lark.Token | None:
    """The token of a string literal, else None."""
    token = literal_token(tree)
    return token if token is not None and token.type in _STRINGS else None


def _string(tree: Any) -> str:
    token = _literal(tree)
    if token is None:
        raise _Unreadable("the product is compared with something other than a string literal")
    return str(celstr(token))


def _strings(tree: Any) -> list[Any]:
    node = unwrap(tree)
    if not isinstance(node, lark.Tree) or node.data != "list_lit":
        raise _Unreadable("the product is tested with in against something other than a list literal")
    items = (
        list(node.children[0].children) if node.children and isinstance(node.children[0], lark.Tree) else []
    )
    if len(items) > MAX_LIST:
        raise _Unreadable(f"the product list has more than {MAX_LIST} entries")
    return items
