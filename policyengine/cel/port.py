"""The CEL port: what the engine and the loader see of a CEL backend, and nothing of any backend.

Compile once at load, bind a request once, evaluate many expressions against it. Values crossing the
port are plain JSON-like Python values (dict, list, str, int, float, bool, None); a backend needing its
own types converts them once per request in ``bind``. An expression is compiled against the
``Declarations`` of the document it comes from (the root names that document's kind binds) and the
result types its field accepts (``Returns``), so a misspelt name or a validation that cannot be true or
false fails at load, never at admission.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from policyengine.errors import CEL_COMPILE, EVAL_ERROR

# The kinds of value a field accepts, in CEL's type names; empty accepts anything.
Returns: TypeAlias = tuple[str, ...]
ANY: Returns = ()
BOOL: Returns = ("bool",)
STRING: Returns = ("string",)
STRING_OR_NULL: Returns = ("string", "null_type")


class CelCompileError(Exception):
    """The expression cannot be compiled. ``code`` is errors.CEL_COMPILE, UNDECLARED_REFERENCE or
    CEL_TYPE."""

    def __init__(self, message: str, code: str = CEL_COMPILE) -> None:
        super().__init__(message)
        self.code = code


class CelEvalError(Exception):
    """Evaluation failed. ``code`` is errors.EVAL_ERROR or errors.EVAL_BUDGET; the message is short.
    ``cost`` is the cost charged when a budget ended the evaluation (None for other errors)."""

    def __init__(self, message: str, code: str = EVAL_ERROR, cost: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.cost = cost


@dataclass(frozen=True)
class Budget:
    """Bounds on one evaluation: abstract cost (AST nodes visited plus comprehension iterations) and a
    wall-clock allowance in seconds. Exceeding either is a CelEvalError with code ``budget_exceeded``."""

    max_cost: int = 1_000_000
    max_seconds: float = 1.0
    # Raised instead of ``budget_exceeded`` when the time runs out: the evaluation is abandoned, not
    # decided (the caller evaluates it again elsewhere, under the full budget).
    escape: type[BaseException] | None = None


DEFAULT_BUDGET = Budget()

# A budget that replaces the engine's own for the evaluations of one context (a thread, or an asyncio
# task): a caller that must get control back sooner (the event loop) gives expressions less time.
BUDGET_OVERRIDE: ContextVar[Budget | None] = ContextVar("policyengine_budget_override", default=None)


@contextmanager
def budget_override(budget: Budget) -> Iterator[None]:
    token = BUDGET_OVERRIDE.set(budget)
    try:
        yield
    finally:
        BUDGET_OVERRIDE.reset(token)


@dataclass(frozen=True)
class Declarations:
    """The root names expressions of one kind of document may read (``object``, ``variables``, ...).

    Any other free identifier, outside the scope of a comprehension, is an ``undeclared_reference`` at
    compile time. What lies below a root (``object.spec``, ``variables.team``) is not checked here.
    """

    origin: str  # the document kind, to say whose bindings these are
    roots: frozenset[str]


# A lazy variable: its name, its compiled expression (None for a constant) and the constant.
VariableDef: TypeAlias = "tuple[str, CompiledExpr | None, Any]"


class Activation(Protocol):
    """Bindings converted for one request. ``extend`` adds per-policy bindings and lazy variables
    cheaply, sharing everything already converted."""

    def extend(
        self,
        bindings: Mapping[str, Any],
        variables: Sequence[VariableDef] = (),
    ) -> Activation: ...

    def release(self) -> None:
        """Ends an activation made by ``extend``: its lazy ``variables`` map refers back to its bindings,
        a reference cycle that only the garbage collector would otherwise free (a collection every few
        requests). Called once the policy's results are built; the activation is not used after."""
        ...


class CompiledExpr(Protocol):
    source: str

    def evaluate(self, activation: Activation, budget: Budget = DEFAULT_BUDGET) -> Any:
        """The result as a plain Python value; raises CelEvalError."""
        ...


class CelBackend(Protocol):
    name: str
    # Whether ``bind`` keeps the bindings' values as they are and its expressions fill deferred fields
    # before reading them (``deferred``); when False, the caller fills every field before ``bind``.
    defers: bool

    def compile(
        self, source: str, declared: Declarations | None = None, returns: Returns = ANY
    ) -> CompiledExpr:
        """Raises CelCompileError. Without ``declared`` any root name is accepted (evaluation reports
        the ones not bound); with it, only the declared ones."""
        ...

    def bind(self, bindings: Mapping[str, Any]) -> Activation:
        """Convert request-wide bindings (object, oldObject, request, ...) once."""
        ...
