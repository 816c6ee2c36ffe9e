"""The front end both backends share: parse, then every compile-time check, then hand the tree over.

Parsing and checking in one place means the two backends accept and reject exactly the same programs;
they differ only in how they run a tree. The checks, in order: the functions called exist and their
literal arguments are valid (``checker``), every free name is declared (``scope``), and the result can
be of a kind the field accepts (``results``).
"""

from __future__ import annotations

from celpy.celparser import CELParseError

from policyengine.cel.checker import check
from policyengine.cel.messages import syntax_error
from policyengine.cel.parser import parse
from policyengine.cel.port import ANY, CelCompileError, Declarations, Returns
from policyengine.cel.results import check_result
from policyengine.cel.scope import check_declared
from policyengine.cel.syntax import Node, drop_trailing_commas


class Frontend:
    """The CEL parser (cel-python's grammar with optional syntax) with the environment's callable names (``known``) and type names (``types``)."""

    def __init__(self, known: frozenset[str], types: frozenset[str], *, positions: bool = False) -> None:
        """``positions``: trees that record each node's line and column, for an evaluator that reports them."""
        self._known = known
        self._types = types
        self._positions = positions

    def parse(self, source: str, declared: Declarations | None = None, returns: Returns = ANY) -> Node:
        """The checked parse tree of ``source``; raises CelCompileError with the first problem."""
        try:
            tree: Node = parse(drop_trailing_commas(source), positions=self._positions)
        except CELParseError as err:
            raise CelCompileError(syntax_error(err)) from None
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        try:
            check(tree, self._known)
            check_declared(tree, declared, self._known, self._types)
            check_result(tree, returns)
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        return tree
