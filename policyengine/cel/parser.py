"""The CEL parser: cel-python's lark grammar extended with CEL's optional syntax (``cel.lark``).

cel-python's parser has no ``.?`` / ``[?`` / ``[?x]`` / ``{?k: v}``; its grammar is a small data file
(Apache-2.0), so a copy with the four optional rules added is loaded here with the options cel-python
uses, and every expression without optional syntax parses to exactly the tree cel-python builds.

Building the LALR tables from the grammar takes a fifth of a second, paid by every command before its
first expression; the tables built from this grammar by this lark version ship beside it as plain JSON
(``cel-tables.json``, rewritten by ``policyengine.cel.parser.write_tables()``) and load in a few milliseconds.
Tables that do not match the grammar's and lark's fingerprint are ignored and the grammar is built.

A tree records the line and column of each node only when asked (``positions=True``): cel-python's
evaluator (the reference backend) puts them in its error messages; the checks and the fast backend never
read them, and recording them is two fifths of the cost of a parse. Tokens always carry their positions.

Loading a policy set reads some texts more than once (compiled, then searched for the ``variables.<name>``
it reads; compiled again under another document kind's names); inside ``parse_once()`` each distinct text
is parsed once and its tree shared. Trees are never modified after parsing, by any reader. The trees
of the bundled packs' texts ship too (``policyengine.cel.shippedtrees``): a text found there is not parsed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import lark
from celpy.celparser import CELParseError
from lark.exceptions import LexError, ParseError, UnexpectedCharacters, UnexpectedToken

_GRAMMAR = Path(__file__).with_name("cel.lark")
TABLES = Path(__file__).with_name("cel-tables.json")
# What a table file stands for: JSON has neither integer keys nor tuples, so both are spelled out.
_INT_KEYS, _TUPLE = "\u0000int-keys", "\u0000tuple"
# Options given again at load time (not data): the lexer callback and the regex flags.
_RUNTIME_OPTIONS = ("lexer_callbacks", "g_regex_flags")
# The trees parsed inside ``parse_once()`` by (source text, with positions), or the syntax error (None
# outside).
_TREES: ContextVar[dict[tuple[str, bool], lark.Tree[Any] | CELParseError] | None] = ContextVar(
    "cel_trees", default=None
)
# Off while the shipped trees (and checks) are themselves being written.
_SHIPPED: ContextVar[bool] = ContextVar("cel_shipped_trees", default=True)


def _literal_keywords(token: lark.Token) -> lark.Token:
    # ``true`` and ``false`` lex as identifiers; the grammar wants BOOL_LIT (as in cel-python).
    if token.value in ("true", "false"):
        return lark.Token("BOOL_LIT", token.value)
    return token


def build(grammar: str, positions: bool = True) -> lark.Lark:
    """The parser built from the grammar's text (what the shipped tables stand in for); its trees record
    each node's position when ``positions``."""
    return lark.Lark(
        grammar,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _literal_keywords},
        propagate_positions=positions,
        maybe_placeholders=False,
        priority="invert",
    )


def fingerprint(grammar: str) -> str:
    """What shipped tables must have been built from: this grammar text and this lark version."""
    return hashlib.sha256(f"{lark.__version__}\0{grammar}".encode()).hexdigest()


def tables_text(grammar: str) -> str:
    """The JSON text of the tables built from ``grammar``, with its fingerprint."""
    data, memo = build(grammar).memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k not in _RUNTIME_OPTIONS}
    data["parser"]["lexer_conf"]["g_regex_flags"] = int(data["parser"]["lexer_conf"]["g_regex_flags"])
    frozen = {"fingerprint": fingerprint(grammar), "data": freeze(data), "memo": freeze(memo)}
    return json.dumps(frozen, sort_keys=True, separators=(",", ":")) + "\n"


def freeze(value: Any) -> Any:
    """``value`` as JSON can hold it: a dict with a non-string key and a tuple are tagged."""
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: freeze(v) for k, v in value.items()}
        return {_INT_KEYS: [[k, freeze(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [freeze(v) for v in value]}
    if isinstance(value, list):
        return [freeze(v) for v in value]
    return value


def _thaw(obj: dict[str, Any]) -> Any:
    if _INT_KEYS in obj:
        return {k: v for k, v in obj[_INT_KEYS]}
    if _TUPLE in obj:
        return tuple(obj[_TUPLE])
    return obj


def thaw(text: str) -> Any:
    """The value ``freeze`` wrote as JSON ``text``."""
    return json.loads(text, object_hook=_thaw)


def _shipped(grammar: str, positions: bool = True) -> lark.Lark | None:
    try:
        tables = thaw(TABLES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(tables, dict) or tables.get("fingerprint") != fingerprint(grammar):
        return None
    runtime = {
        "lexer_callbacks": {"IDENT": _literal_keywords},
        "g_regex_flags": re.M,
        "propagate_positions": positions,
    }
    return lark.Lark._load_from_dict(tables["data"], tables["memo"], **runtime)  # type: ignore[no-any-return,no-untyped-call]


@functools.cache
def _lark() -> lark.Lark:
    """The parser whose trees do not record node positions."""
    grammar = _GRAMMAR.read_text(encoding="utf-8")
    return _shipped(grammar, positions=False) or build(grammar, positions=False)


@functools.cache
def _positioned_lark() -> lark.Lark:
    """The parser whose trees record each node's line and column (``tree.meta``)."""
    grammar = _GRAMMAR.read_text(encoding="utf-8")
    return _shipped(grammar) or build(grammar)


@contextlib.contextmanager
def parse_once() -> Iterator[None]:
    """Within this block (in this thread or task), each distinct source text is parsed once: a text met
    again gets the tree already built. The trees are dropped when the outermost block ends."""
    if _TREES.get() is not None:
        yield
        return
    token = _TREES.set({})
    try:
        yield
    finally:
        _TREES.reset(token)


def parse(source: str, *, positions: bool = False) -> lark.Tree[Any]:
    """The parse tree of ``source``, with each node's line and column in ``tree.meta`` when
    ``positions``; raises cel-python's CELParseError on a syntax error."""
    trees = _TREES.get()
    if trees is None:
        return _parse(source, positions)
    # A tree with positions serves a reader that needs none.
    tree = trees.get((source, True)) or (None if positions else trees.get((source, False)))
    if tree is None:
        try:
            tree = trees[source, positions] = _parse(source, positions)
        except CELParseError as err:
            trees[source, positions] = err
            raise
    if isinstance(tree, CELParseError):
        raise tree.with_traceback(None)
    return tree


def parsed_texts() -> list[tuple[str, bool]]:
    """Each (source text, with positions) parsed so far in the enclosing ``parse_once()`` block."""
    return list(_TREES.get() or ())


def shipped() -> bool:
    """Whether what ships for the bundled packs' texts (``shippedtrees``) may be used here."""
    return _SHIPPED.get()


@contextlib.contextmanager
def without_shipped_trees() -> Iterator[None]:
    """Within this block every text is parsed, none taken from the shipped trees, and checked, none
    vouched for by the shipped checks."""
    token = _SHIPPED.set(False)
    try:
        yield
    finally:
        _SHIPPED.reset(token)


@functools.cache
def grammar_fingerprint() -> str:
    """The fingerprint of this grammar under this lark version."""
    return fingerprint(_GRAMMAR.read_text(encoding="utf-8"))


def _parse(source: str, positions: bool) -> lark.Tree[Any]:
    if not positions and _SHIPPED.get():
        from policyengine.cel.shippedtrees import lookup

        shipped = lookup(source, grammar_fingerprint())
        if shipped is not None:
            return shipped
    return parse_text(source, positions)


def parse_text(source: str, positions: bool = False) -> lark.Tree[Any]:
    """The tree the parser makes of ``source`` (never a shipped one); CELParseError on a syntax error."""
    try:
        return (_positioned_lark() if positions else _lark()).parse(source)
    except (UnexpectedToken, UnexpectedCharacters) as err:
        raise CELParseError(err.get_context(source), *err.args, line=err.line, column=err.column) from None
    except (LexError, ParseError) as err:
        raise CELParseError(str(err.args[0]).splitlines()[0] if err.args else "syntax error") from None


def write_tables() -> None:
    """Rewrite the shipped tables (after a change to the grammar or to lark)."""
    TABLES.write_text(tables_text(_GRAMMAR.read_text(encoding="utf-8")), encoding="utf-8")
