"""The reference CEL backend: cel-python's parser and tree-walking evaluator with the Kubernetes libraries.

cel-python's CompiledRunner is not used: it gives wrong answers under threads and breaks on ``has()``.
Each evaluation builds its own MeteredEvaluator over a shared, read-only base activation (functions and
type names), so evaluations on different threads share no mutable state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import Activation as CelpyActivation
from celpy.evaluation import CELEvalError

from policyengine.cel.budget import BudgetExceeded, metered
from policyengine.cel.frontend import Frontend
from policyengine.cel.library import build_functions, known_names, type_identifiers
from policyengine.cel.messages import syntax_error, trim_message
from policyengine.cel.port import (
    ANY,
    DEFAULT_BUDGET,
    Budget,
    CelEvalError,
    CompiledExpr,
    Declarations,
    Returns,
    VariableDef,
)
from policyengine.cel.reference.evaluator import evaluate, metered_add
from policyengine.cel.syntax import Node
from policyengine.cel.values import from_cel, to_cel
from policyengine.cel.variables import compute, definitions

__all__ = [
    "ReferenceActivation",
    "ReferenceBackend",
    "ReferenceExpr",
    "from_cel",
    "syntax_error",
    "to_cel",
    "trim_message",
]


def _eval_error_message(err: BaseException) -> str:
    args = getattr(err, "args", ())
    first = args[0] if args else err
    return trim_message(str(first))


class _LazyVariables(celtypes.MapType):
    """The ``variables`` map as cel-python sees it: computed on first use (``variables.compute``)."""

    def __init__(self, activation: ReferenceActivation, defs: Sequence[VariableDef]) -> None:
        super().__init__({})
        self._activation = activation
        self._defs = {celtypes.StringType(k): v for k, v in definitions(defs).items()}
        for key in self._defs:
            dict.__setitem__(self, key, None)

    def __getitem__(self, key: Any) -> Any:
        key = celtypes.StringType(key) if isinstance(key, str) else key
        if key not in self._defs:
            return dict.__getitem__(self, key)
        compiled, const = self._defs[key]
        value = compute(
            str(key), compiled, const, lambda c: c.evaluate_cel(self._activation), CELEvalError, to_cel
        )
        del self._defs[key]
        dict.__setitem__(self, key, value)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key)


class ReferenceActivation:
    """Converted bindings for one request; ``extend`` shares everything already converted."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def extend(
        self,
        bindings: Mapping[str, Any],
        variables: Sequence[VariableDef] = (),
    ) -> ReferenceActivation:
        values = dict(self.values)
        for name, value in bindings.items():
            values[name] = to_cel(value)
        child = ReferenceActivation(values)
        if variables:
            values["variables"] = _LazyVariables(child, variables)
        return child

    def release(self) -> None:
        self.values.pop("variables", None)  # the map holds this activation: the cycle ends here


class ReferenceExpr:
    """One compiled expression: its tree and the backend's read-only base activation."""

    def __init__(self, source: str, tree: Node, base: CelpyActivation) -> None:
        self.source = source
        self._tree = tree
        self._base = base

    def evaluate_cel(self, activation: Any, budget: Budget = DEFAULT_BUDGET) -> Any:
        """The result as a cel-python value; raises CelEvalError."""
        if not isinstance(activation, ReferenceActivation):
            raise TypeError("activation must come from ReferenceBackend.bind")
        try:
            with metered(budget) as meter:
                result = evaluate(self._tree, self._base, activation.values, meter)
        except BudgetExceeded as err:
            raise CelEvalError(str(err), "budget_exceeded", err.cost) from None
        except CELEvalError as err:
            raise CelEvalError(_eval_error_message(err)) from None
        except RecursionError:
            raise CelEvalError("expression nests too deeply", "budget_exceeded") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as err:
            # cel-python lets some operand errors escape as Python exceptions.
            raise CelEvalError(trim_message(f"{type(err).__name__}: {err}")) from None
        if isinstance(result, CELEvalError):
            raise CelEvalError(_eval_error_message(result))
        return result

    def evaluate(self, activation: Any, budget: Budget = DEFAULT_BUDGET) -> Any:
        return from_cel(self.evaluate_cel(activation, budget))


class ReferenceBackend:
    name = "reference"
    defers = False  # ``bind`` converts every value once: fields are filled before it (``deferred``)

    def __init__(self) -> None:
        functions = build_functions()
        functions["_+_"] = metered_add
        # cel-python's evaluator names the line and column of a failing node.
        self._frontend = Frontend(known_names(functions), frozenset(type_identifiers()), positions=True)
        self._base = CelpyActivation(
            annotations=dict(celpy.Environment().annotations),
            functions=functions,
            vars=dict(type_identifiers()),
        )

    def compile(
        self, source: str, declared: Declarations | None = None, returns: Returns = ANY
    ) -> CompiledExpr:
        tree = self._frontend.parse(source, declared, returns)
        return ReferenceExpr(source, tree, self._base)

    def bind(self, bindings: Mapping[str, Any]) -> ReferenceActivation:
        return ReferenceActivation({name: to_cel(value) for name, value in bindings.items()})
