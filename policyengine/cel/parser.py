"""The CEL parser: cel-python's lark grammar extended with CEL's optional syntax (``cel.lark``).

cel-python's parser has no ``.?`` / ``[?`` / ``[?x]`` / ``{?k: v}``; its grammar is a small data file
(Apache-2.0), so a copy with the four optional rules added is loaded here with the options cel-python
uses, and every expression without optional syntax parses to exactly the tree cel-python builds.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import lark
from celpy.celparser import CELParseError
from lark.exceptions import LexError, ParseError, UnexpectedCharacters, UnexpectedToken

_GRAMMAR = Path(__file__).with_name("cel.lark")


def _literal_keywords(token: lark.Token) -> lark.Token:
    # ``true`` and ``false`` lex as identifiers; the grammar wants BOOL_LIT (as in cel-python).
    if token.value in ("true", "false"):
        return lark.Token("BOOL_LIT", token.value)
    return token


@functools.cache
def _lark() -> lark.Lark:
    return lark.Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _literal_keywords},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
    )


def parse(source: str) -> lark.Tree[Any]:
    """The parse tree of ``source``; raises cel-python's CELParseError on a syntax error."""
    try:
        return _lark().parse(source)
    except (UnexpectedToken, UnexpectedCharacters) as err:
        raise CELParseError(err.get_context(source), *err.args, line=err.line, column=err.column) from None
    except (LexError, ParseError) as err:
        raise CELParseError(str(err.args[0]).splitlines()[0] if err.args else "syntax error") from None
