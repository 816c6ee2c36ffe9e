"""Parse trees of the bundled packs' CEL expressions, shipped beside the grammar (``cel-trees.json``).

Every command that loads the bundled packs parses the same hundred-odd expressions; rebuilding their
trees from plain JSON costs a fraction of running the parser (and spares building its lexer when no
other text needs it). The file holds, for each expression text of the bundled packs, the tree
``parser.parse(text)`` makes without node positions, every token with its type, value and positions.
It is data of this package, written by ``scripts/write-cel-trees.py``, never from user
input; a test fails when it no longer matches the packs, the grammar or lark. A file whose fingerprint
(grammar text and lark version) is not this parser's is ignored, and every text is parsed.

The file also says which compile-time checks each of those texts passed when it was written
(``checked``): the declarations and result types the bundled packs compile it against
(``frontend.check_key``), under the callable and type names of the checks' environment (``checks``, a
fingerprint). The front end skips the checks of a text the file vouches for under the same key and
environment (a fifth of loading the bundled packs); any other text, key or environment is checked as
before.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import lark

TREES = Path(__file__).with_name("cel-trees.json")
# A token's positions, in this order, as lark's Token takes them after its type and value.
_POSITIONS = ("start_pos", "line", "column", "end_line", "end_column", "end_pos")


def encode(node: lark.Tree[Any] | lark.Token) -> Any:
    """``node`` as JSON can hold it: a tree is a list (its rule's name, then its children), a token a
    dict of its type, value and positions."""
    if isinstance(node, lark.Token):
        return {"k": node.type, "v": node.value, "p": [getattr(node, name) for name in _POSITIONS]}
    data: Any = node.data
    if isinstance(data, lark.Token) or type(data) is not str:  # a rule named by a token
        data = encode(data)
    return [data, *(encode(child) for child in node.children)]


def decode(obj: Any) -> Any:
    """The tree (or token) ``encode`` made ``obj`` of."""
    if isinstance(obj, dict):
        return lark.Token(obj["k"], obj["v"], *obj["p"])
    data = obj[0] if type(obj[0]) is str else decode(obj[0])
    return lark.Tree(data, [decode(child) for child in obj[1:]])


def text(
    sources: Iterable[str],
    parse: Callable[[str], lark.Tree[Any]],
    fingerprint: str,
    checked: Mapping[str, Collection[str]] | None = None,
    checks: str = "",
) -> str:
    """The file's JSON text: each of ``sources`` with the tree ``parse`` makes of it (without positions),
    and the keys (``frontend.check_key``) each of them passed the checks under (``checked``) in the
    environment ``checks``."""
    trees = {source: encode(parse(source)) for source in sorted(set(sources))}
    passed = {source: sorted(keys) for source, keys in sorted((checked or {}).items()) if source in trees}
    body = {"fingerprint": fingerprint, "trees": trees, "checks": checks, "checked": passed}
    return json.dumps(body, separators=(",", ":")) + "\n"


@functools.cache
def _file() -> dict[str, Any]:
    try:
        shipped = json.loads(TREES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return shipped if isinstance(shipped, dict) else {}


@functools.cache
def _table(fingerprint: str) -> dict[str, Any]:
    shipped = _file()
    if shipped.get("fingerprint") != fingerprint:
        return {}
    trees = shipped.get("trees")
    return trees if isinstance(trees, dict) else {}


def lookup(source: str, fingerprint: str) -> lark.Tree[Any] | None:
    """The shipped tree of ``source`` (a fresh copy: the caller may keep it), or None when none ships
    for this text under this grammar and lark version."""
    found = _table(fingerprint).get(source)
    return None if found is None else decode(found)


@functools.cache
def _checked(fingerprint: str, checks: str) -> dict[str, frozenset[str]]:
    shipped = _file()
    checked = shipped.get("checked")
    if (
        shipped.get("fingerprint") != fingerprint
        or shipped.get("checks") != checks
        or not isinstance(checked, dict)
    ):
        return {}
    return {source: frozenset(keys) for source, keys in checked.items() if isinstance(keys, list)}


def vouched(source: str, key: str, fingerprint: str, checks: str) -> bool:
    """Whether the file says ``source`` passed every compile-time check under ``key``
    (``frontend.check_key``) in the checks' environment ``checks``, with trees of this grammar and lark
    version."""
    return key in _checked(fingerprint, checks).get(source, ())


def environment(known: Iterable[str], types: Iterable[str]) -> str:
    """The fingerprint of the callable and type names the checks are made against."""
    text = "\n".join(sorted(known)) + "\n\n" + "\n".join(sorted(types))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
