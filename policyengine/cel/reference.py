"""The reference CEL backend: cel-python's parser and InterpretedRunner.

cel-python's CompiledRunner is not used: it gives wrong answers under threads and breaks on ``has()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import celpy
from celpy import celtypes

from policyengine.cel import DEFAULT_BUDGET, Budget, CelCompileError, CelEvalError, CompiledExpr

_MAX_MESSAGE = 200
_ACTIVATION_DUMP = re.compile(r"\s*\(in activation .*", re.DOTALL)


def to_cel(value: Any) -> Any:
    """A plain JSON-like value as cel-python values."""
    return celpy.json_to_cel(value)


def from_cel(value: Any) -> Any:
    """cel-python values back to plain Python (bool before int: BoolType subclasses int)."""
    if value is None:
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, dict):
        return {from_cel(k): from_cel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_cel(v) for v in value]
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def trim_message(text: str) -> str:
    """cel-python messages can embed the whole activation (the request): keep the first, short part."""
    text = _ACTIVATION_DUMP.sub("", text).strip()
    text = text.splitlines()[0] if text else "evaluation error"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _eval_error_message(err: BaseException) -> str:
    args = getattr(err, "args", ())
    first = args[0] if args else err
    return trim_message(str(first))


class _LazyVariables(celtypes.MapType):
    """The ``variables`` map: each entry is computed on first use and memoised for this evaluation."""

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
        compiled, const = self._defs.pop(key)
        if compiled is None:
            value = to_cel(const)
        else:
            try:
                value = compiled.evaluate_cel(self._activation)
            except CelEvalError as err:
                value = celpy.CELEvalError(str(err))
        dict.__setitem__(self, key, value)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key)


class ReferenceActivation:
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
    def __init__(self, source: str, runner: Any) -> None:
        self.source = source
        self._runner = runner

    def evaluate_cel(self, activation: Any, budget: Budget = DEFAULT_BUDGET) -> Any:
        assert isinstance(activation, ReferenceActivation)
        try:
            result = self._runner.evaluate(activation.values)
        except celpy.CELEvalError as err:
            raise CelEvalError(_eval_error_message(err)) from None
        except RecursionError:
            raise CelEvalError("expression nests too deeply", "budget_exceeded") from None
        if isinstance(result, celpy.CELEvalError):
            raise CelEvalError(_eval_error_message(result))
        return result

    def evaluate(self, activation: Any, budget: Budget = DEFAULT_BUDGET) -> Any:
        return from_cel(self.evaluate_cel(activation, budget))


class ReferenceBackend:
    name = "reference"

    def __init__(self) -> None:
        self._env = celpy.Environment()

    def compile(self, source: str) -> CompiledExpr:
        try:
            ast = self._env.compile(source)
        except celpy.CELParseError as err:
            raise CelCompileError(trim_message(str(err.args[0]) if err.args else str(err))) from None
        return ReferenceExpr(source, self._env.program(ast))

    def bind(self, bindings: Mapping[str, Any]) -> ReferenceActivation:
        return ReferenceActivation({name: to_cel(value) for name, value in bindings.items()})
