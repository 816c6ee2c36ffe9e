"""The front end both backends share: parse, then every compile-time check, then hand the tree over.

Parsing and checking in one place means the two backends accept and reject exactly the same programs;
they differ only in how they run a tree. The checks, in order: the functions called exist and their
literal arguments are valid (``checker``), every free name is declared (``scope``), and the result can
be of a kind the field accepts (``results``). A bundled pack's text is not checked again under the
declarations and result types it passed them under when the package was written (``shippedtrees``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar

from celpy.celparser import CELParseError

from policyengine.cel import shippedtrees
from policyengine.cel.checker import check
from policyengine.cel.messages import syntax_error
from policyengine.cel.parser import grammar_fingerprint, parse, shipped
from policyengine.cel.port import ANY, CelCompileError, Declarations, Returns
from policyengine.cel.results import check_result
from policyengine.cel.scope import check_declared
from policyengine.cel.syntax import Node, drop_trailing_commas

# Inside ``recording_checks()``: each checks environment's texts with the keys they passed the checks under.
_RECORDED: ContextVar[dict[str, dict[str, set[str]]] | None] = ContextVar("cel_checks_passed", default=None)


@contextlib.contextmanager
def recording_checks() -> Iterator[dict[str, dict[str, set[str]]]]:
    """Within this block, every text that passes the checks is recorded: environment -> text -> keys
    (``shippedtrees.environment`` and ``check_key``), as ``shippedtrees.text`` writes them."""
    recorded: dict[str, dict[str, set[str]]] = {}
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


@functools.lru_cache(maxsize=64)
def check_key(declared: Declarations | None, returns: Returns) -> str:
    """What the checks of a text depend on besides the text and their environment: the root names its
    document kind declares and the result types its field accepts."""
    if declared is None:
        names = "*"  # no declarations: every free name is allowed
    else:
        names = declared.origin + ":" + ",".join(sorted(declared.roots))
    return hashlib.sha256(names.encode()).hexdigest()[:16] + "|" + ",".join(returns)


class Frontend:
    """The CEL parser (cel-python's grammar with optional syntax) with the environment's callable names (``known``) and type names (``types``)."""

    def __init__(self, known: frozenset[str], types: frozenset[str], *, positions: bool = False) -> None:
        """``positions``: trees that record each node's line and column, for an evaluator that reports them."""
        self._known = known
        self._types = types
        self._positions = positions
        self._environment = ""  # shippedtrees.environment of known and types, made when first needed

    def parse(self, source: str, declared: Declarations | None = None, returns: Returns = ANY) -> Node:
        """The checked parse tree of ``source``; raises CelCompileError with the first problem."""
        try:
            tree: Node = parse(drop_trailing_commas(source), positions=self._positions)
        except CELParseError as err:
            raise CelCompileError(syntax_error(err)) from None
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        key = check_key(declared, returns)
        if shipped() and shippedtrees.vouched(source, key, grammar_fingerprint(), self.environment()):
            return tree  # a bundled pack's text, checked under the same key when the package was written
        try:
            check(tree, self._known)
            check_declared(tree, declared, self._known, self._types)
            check_result(tree, returns)
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        recorded = _RECORDED.get()
        if recorded is not None:
            recorded.setdefault(self.environment(), {}).setdefault(source, set()).add(key)
        return tree

    def environment(self) -> str:
        """The fingerprint of the names these checks are made against (``shippedtrees.environment``)."""
        if not self._environment:
            self._environment = shippedtrees.environment(self._known, self._types)
        return self._environment
