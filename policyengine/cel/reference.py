"""The reference CEL backend: cel-python's parser and tree-walking evaluator with the Kubernetes libraries.

cel-python's CompiledRunner is not used: it gives wrong answers under threads and breaks on ``has()``.
Each evaluation builds its own MeteredEvaluator over a shared, read-only base activation (functions and
type names), so evaluations on different threads share no mutable state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import Activation as CelpyActivation
from celpy.evaluation import CELEvalError

from policyengine.cel import DEFAULT_BUDGET, Budget, CelCompileError, CelEvalError, CompiledExpr
from policyengine.cel.budget import BudgetExceeded, metered
from policyengine.cel.checker import check
from policyengine.cel.evaluator import evaluate, metered_add
from policyengine.cel.library import build_functions, known_names, type_identifiers
from policyengine.cel.syntax import Node, drop_trailing_commas
from policyengine.cel.values import from_cel, to_cel

__all__ = [
    "ReferenceActivation",
    "ReferenceBackend",
    "ReferenceExpr",
    "from_cel",
    "syntax_error",
    "to_cel",
    "trim_message",
]

_MAX_MESSAGE = 200
_ACTIVATION_DUMP = re.compile(r"\s*\((in activation|in container|in bindings) .*", re.DOTALL)
_BINDINGS_DUMP = re.compile(r" in bindings \[.*", re.DOTALL)


_CELPY_CLASS = re.compile(r"<class 'celpy\.celtypes\.(\w+?)(?:Type)?'>")
_LARK_RULE = re.compile(r"Token\('RULE', '(\w+)'\)")


def trim_message(text: str) -> str:
    """cel-python messages can embed the whole activation (the request): keep the first, short part,
    with cel-python's class and grammar-rule reprs reduced to CEL names."""
    text = _ACTIVATION_DUMP.sub("", text)
    text = _CELPY_CLASS.sub(lambda m: m.group(1).lower(), text)
    text = _LARK_RULE.sub(r"\1", text)
    text = _BINDINGS_DUMP.sub("", text).strip()
    text = text.splitlines()[0] if text else "evaluation error"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def syntax_error(err: CELParseError) -> str:
    where = f" at line {err.line}, column {err.column}" if err.line is not None else ""
    text = str(err.args[0]) if err.args else ""
    near = text.splitlines()[0].strip() if text.strip() else ""
    return trim_message(f"syntax error{where}" + (f" near {near!r}" if near else ""))


def _eval_error_message(err: BaseException) -> str:
    args = getattr(err, "args", ())
    first = args[0] if args else err
    return trim_message(str(first))


class _LazyVariables(celtypes.MapType):
    """The ``variables`` map: each entry is computed on first use and memoised for this activation.

    A variable that fails is memoised as its error, so using it fails every time and the other
    variables are unaffected. A budget overrun is not memoised: it ends the whole evaluation.
    """

    def __init__(self, activation: ReferenceActivation, defs: Sequence[tuple[str, Any, Any]]) -> None:
        super().__init__({})
        self._activation = activation
        self._defs = {celtypes.StringType(name): (compiled, const) for name, compiled, const in defs}
        for key in self._defs:
            dict.__setitem__(self, key, None)

    def __getitem__(self, key: Any) -> Any:
        key = celtypes.StringType(key) if isinstance(key, str) else key
        if key not in self._defs:
            return dict.__getitem__(self, key)
        compiled, const = self._defs[key]
        if compiled is None:
            value = to_cel(const)
        else:
            try:
                value = compiled.evaluate_cel(self._activation)
            except CelEvalError as err:
                if err.code == "budget_exceeded":
                    raise BudgetExceeded(str(err)) from None
                value = CELEvalError(f"variables.{key}: {err}")
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
        variables: Sequence[tuple[str, Any, Any]] = (),
    ) -> ReferenceActivation:
        values = dict(self.values)
        for name, value in bindings.items():
            values[name] = to_cel(value)
        child = ReferenceActivation(values)
        if variables:
            values["variables"] = _LazyVariables(child, variables)
        return child


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
            raise CelEvalError(str(err), "budget_exceeded") from None
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

    def __init__(self) -> None:
        self._env = celpy.Environment()
        functions = build_functions()
        functions["_+_"] = metered_add
        self._known = known_names(functions)
        self._base = CelpyActivation(
            annotations=dict(self._env.annotations),
            functions=functions,
            vars=dict(type_identifiers()),
        )

    def compile(self, source: str) -> CompiledExpr:
        try:
            tree = self._env.compile(drop_trailing_commas(source))
        except CELParseError as err:
            raise CelCompileError(syntax_error(err)) from None
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        check(tree, self._known)
        return ReferenceExpr(source, tree, self._base)

    def bind(self, bindings: Mapping[str, Any]) -> ReferenceActivation:
        return ReferenceActivation({name: to_cel(value) for name, value in bindings.items()})
