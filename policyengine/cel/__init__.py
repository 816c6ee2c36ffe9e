"""The CEL port: compile once at load, bind a request once, evaluate many expressions against it.

The engine only talks to the ``CelBackend`` protocol below, so a faster backend can replace the
cel-python reference without touching anything else. Values crossing the port are plain JSON-like Python
values (dict, list, str, int, float, bool, None); conversion to a backend's own types happens once per
request in ``bind``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class CelCompileError(Exception):
    """The expression does not parse, or calls a function the environment does not have."""


class CelEvalError(Exception):
    """Evaluation failed. ``code`` is errors.EVAL_ERROR or errors.EVAL_BUDGET; the message is short."""

    def __init__(self, message: str, code: str = "eval_error") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Budget:
    """Bounds on one evaluation: abstract cost (AST nodes visited plus comprehension iterations) and a
    wall-clock allowance in seconds. Exceeding either is a CelEvalError with code ``budget_exceeded``."""

    max_cost: int = 1_000_000
    max_seconds: float = 1.0


DEFAULT_BUDGET = Budget()


class Activation(Protocol):
    """Bindings converted for one request. ``extend`` adds per-policy bindings and lazy variables
    cheaply, sharing everything already converted."""

    def extend(
        self,
        bindings: Mapping[str, Any],
        variables: Sequence[tuple[str, CompiledExpr | None, Any]] = (),
    ) -> Activation: ...


class CompiledExpr(Protocol):
    source: str

    def evaluate(self, activation: Activation, budget: Budget = DEFAULT_BUDGET) -> Any:
        """The result as a plain Python value; raises CelEvalError."""
        ...


class CelBackend(Protocol):
    name: str

    def compile(self, source: str) -> CompiledExpr:
        """Raises CelCompileError."""
        ...

    def bind(self, bindings: Mapping[str, Any]) -> Activation:
        """Convert request-wide bindings (object, oldObject, request, ...) once."""
        ...


def get_backend(name: str = "reference") -> CelBackend:
    """The backend registered under ``name``: ``reference`` (cel-python)."""
    if name == "reference":
        from policyengine.cel.reference import ReferenceBackend

        return ReferenceBackend()
    raise ValueError(f"unknown CEL backend {name!r} (known: reference)")


__all__ = [
    "DEFAULT_BUDGET",
    "Activation",
    "Budget",
    "CelBackend",
    "CelCompileError",
    "CelEvalError",
    "CompiledExpr",
    "get_backend",
]
