"""The CEL port: compile once at load, bind a request once, evaluate many expressions against it.

The engine only talks to the ``CelBackend`` protocol below. Two backends implement it: ``fast`` (the
default, ``policyengine.cel.fast``: CEL compiled to Python closures that read the request's plain values,
nothing converted) and ``reference`` (``policyengine.cel.reference``: cel-python's evaluator, the oracle
the fast one is tested against). Values crossing the port are plain JSON-like Python values (dict,
list, str, int, float, bool, None); a backend needing its own types converts them once per request in
``bind``. Both share the parser, the compile-time checks and the Kubernetes libraries (``lib``).
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


BACKENDS = ("fast", "reference")


def get_backend(name: str = "fast") -> CelBackend:
    """The backend registered under ``name``: ``fast`` (the default: CEL compiled to Python closures
    over the request's plain values) or ``reference`` (cel-python's evaluator, the oracle it is tested
    against)."""
    if name == "reference":
        from policyengine.cel.reference import ReferenceBackend

        return ReferenceBackend()
    if name == "fast":
        from policyengine.cel.fast import FastBackend

        return FastBackend()
    raise ValueError(f"unknown CEL backend {name!r} (known: {', '.join(BACKENDS)})")


__all__ = [
    "BACKENDS",
    "DEFAULT_BUDGET",
    "Activation",
    "Budget",
    "CelBackend",
    "CelCompileError",
    "CelEvalError",
    "CompiledExpr",
    "get_backend",
]
