"""Shared variables: ``policyengine.io/v1`` ``PolicyVariables`` documents, whose variables every native
``Policy`` of the set reads as ``variables.<name>`` without declaring them.

A shared variable is bound into each policy that reads it (directly or through another shared variable)
as if the policy had declared it first: lazy, evaluated on first use, memoised for that evaluation, with
the policy's bindings (``params`` is the GovernanceConfig spec). Rules of scope, checked at load:

- a name is declared by one PolicyVariables document in the whole set;
- a shared variable reads only shared variables declared before it (documents in load order: the
  bundled packs first, then files in path order);
- a policy's own variable of the same name wins within that policy, unless a shared variable the policy
  uses reads that name (it would see the policy's value, not its own): that is a load error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from policyengine import errors
from policyengine.cel.checker import variables_read
from policyengine.errors import Problem
from policyengine.loader import Document
from policyengine.model import Expr, Policy, Variable
from policyengine.native import expr

__all__ = ["KIND", "SharedVariable", "SharedVariables", "parse"]

KIND = "PolicyVariables"


@dataclass(frozen=True)
class SharedVariable:
    variable: Variable
    document: str  # the PolicyVariables document's name
    reads: frozenset[str]  # the variables.<name> its expression reads

    @property
    def name(self) -> str:
        return self.variable.name

    @property
    def expression(self) -> Expr:
        assert self.variable.expression is not None  # parse always sets one
        return self.variable.expression


def parse(doc: Document) -> list[SharedVariable]:
    """The variables of a PolicyVariables document that passed its schema, in document order."""
    out = []
    for i, raw in enumerate(doc.data["spec"]["variables"]):
        source = str(raw["expression"])
        variable = Variable(str(raw["name"]), expr(doc, ("spec", "variables", i, "expression"), source))
        out.append(SharedVariable(variable, doc.name, variables_read(source)))
    return out


def _where(shared: SharedVariable) -> str:
    ref = shared.expression.ref
    return f"PolicyVariables {shared.document!r} ({ref.file}:{ref.line})"


class SharedVariables:
    """The set's shared variables, checked once; ``bind`` adds the ones a policy uses to it."""

    def __init__(self, declared: Iterable[SharedVariable], problems: list[Problem]) -> None:
        self.by_name: dict[str, SharedVariable] = {}
        for shared in declared:
            first = self.by_name.get(shared.name)
            if first is not None:
                _problem(
                    problems,
                    shared.expression,
                    errors.DUPLICATE_NAME,
                    f"variables.{shared.name} is already declared by {_where(first)}",
                )
                continue
            for name in sorted(shared.reads - set(self.by_name)):
                _problem(
                    problems,
                    shared.expression,
                    errors.CEL_COMPILE,
                    f"variables.{name} is not a shared variable declared before this one "
                    f"(declared: {', '.join(self.by_name) or 'none'})",
                )
            self.by_name[shared.name] = shared
        self.order = {name: i for i, name in enumerate(self.by_name)}

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.by_name)

    def bind(self, policy: Policy, expressions: Sequence[Expr], problems: list[Problem]) -> Policy:
        """``policy`` with the shared variables its ``expressions`` use, before its own variables."""
        own = {v.name: v for v in policy.variables}
        wanted = [n for e in expressions for n in variables_read(e.source) if n not in own]
        used = self._closure(wanted)
        for name in sorted(used, key=self.order.__getitem__):
            shared = self.by_name[name]
            for clash in sorted(shared.reads & own.keys()):
                where = own[clash].expression or shared.expression
                _problem(
                    problems,
                    where,
                    errors.DUPLICATE_NAME,
                    f"variables.{clash} is also a shared variable, which variables.{name} of "
                    f"{_where(shared)} reads, and this policy uses variables.{name}: "
                    "rename this variable",
                )
        if not used:
            return policy
        bound = tuple(self.by_name[n].variable for n in sorted(used, key=self.order.__getitem__))
        return replace(policy, variables=(*bound, *policy.variables))

    def _closure(self, names: Iterable[str]) -> set[str]:
        used: set[str] = set()
        stack = [n for n in names if n in self.by_name]
        while stack:
            name = stack.pop()
            if name not in used:
                used.add(name)
                stack.extend(n for n in self.by_name[name].reads if n in self.by_name)
        return used


def _problem(problems: list[Problem], at: Expr, code: str, message: str) -> None:
    problems.append(Problem(at.ref.file, at.ref.line, code, message, at.path))
