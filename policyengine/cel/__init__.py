"""CEL for policies: compile once at load, bind a request once, evaluate many expressions against it.

The engine and the loader talk to the port (``port``: the ``CelBackend`` protocol, ``Budget``, the
errors, the ``Declarations`` an expression is compiled against) and get a backend from ``backends``.
Two backends implement the port: ``fast`` (the default, CEL compiled to Python closures that read the
request's plain values) and ``reference`` (cel-python's evaluator, the oracle the fast one is tested
against). Both share the front end (``frontend``: parse, then the compile-time checks), the function
table (``library``) and the Kubernetes libraries (``lib``); neither imports the other.

    backends               get_backend: the one module that knows both
    fast | reference       the backends
    frontend               parse -> check, shared by both
    checker | scope | results | library | values | variables | deferred
    lib                    the Kubernetes and cel-go libraries, over cel-python values
    budget | messages | syntax
    port                   protocols, Budget, errors, Declarations
"""

from __future__ import annotations

from policyengine.cel.backends import BACKENDS, get_backend
from policyengine.cel.port import (
    ANY,
    BOOL,
    BUDGET_OVERRIDE,
    DEFAULT_BUDGET,
    STRING,
    STRING_OR_NULL,
    Activation,
    Budget,
    CelBackend,
    CelCompileError,
    CelEvalError,
    CompiledExpr,
    Declarations,
    Returns,
    budget_override,
)

__all__ = [
    "ANY",
    "BACKENDS",
    "BOOL",
    "BUDGET_OVERRIDE",
    "DEFAULT_BUDGET",
    "STRING",
    "STRING_OR_NULL",
    "Activation",
    "Budget",
    "CelBackend",
    "CelCompileError",
    "CelEvalError",
    "CompiledExpr",
    "Declarations",
    "Returns",
    "budget_override",
    "get_backend",
]
