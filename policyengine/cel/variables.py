"""The lazy ``variables`` contract both backends keep: each variable is computed on first use and
memoised for the activation; a variable that fails is memoised as its error, so using it fails every
time and the other variables are unaffected; a budget overrun is not memoised, it ends the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from policyengine.cel.budget import BudgetExceeded
from policyengine.cel.port import CelEvalError, CompiledExpr, VariableDef


class VariableDefs(tuple[VariableDef, ...]):
    """A policy's variables, built once with it: an activation is made for every policy of every request,
    and reads its table by name (``definitions``) from here instead of building it each time. Never
    changed once made (a tuple; the table and names are read-only by convention)."""

    @cached_property
    def by_name(self) -> dict[str, tuple[CompiledExpr | None, Any]]:
        return {name: (compiled, const) for name, compiled, const in self}

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.by_name)


def definitions(defs: Sequence[VariableDef]) -> dict[str, tuple[CompiledExpr | None, Any]]:
    """Variable name -> (compiled expression or None, constant)."""
    if isinstance(defs, VariableDefs):
        return defs.by_name
    return {name: (compiled, const) for name, compiled, const in defs}


def compute(
    name: str,
    compiled: Any,
    const: Any,
    run: Callable[[Any], Any],
    as_error: Callable[[str], Any],
    convert: Callable[[Any], Any] = lambda value: value,
) -> Any:
    """The value of one variable, or the backend's error value for it (``as_error``): a constant is
    ``convert``-ed, an expression is ``run``. A budget overrun propagates as BudgetExceeded, so the
    expression that used the variable stops with ``budget_exceeded``."""
    if compiled is None:
        return convert(const)
    try:
        return run(compiled)
    except CelEvalError as err:
        return failed(name, err, as_error)


def failed(name: str, err: CelEvalError, as_error: Callable[[str], Any]) -> Any:
    """What a variable whose expression failed with ``err`` is (``compute``'s error rule, for a backend
    that runs the expression itself): a budget overrun propagates, any other error is the value."""
    if err.code == "budget_exceeded":
        raise BudgetExceeded(str(err), err.cost or 0) from None
    return as_error(f"variables.{name}: {err}")
