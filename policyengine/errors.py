"""The core's exception tree and its stable problem codes.

    PolicyEngineError                 base of everything the core raises on purpose
    ├── LoadError                     a policy, config, inventory or manifest set could not be loaded;
    │                                 carries *every* Problem found (file:line: code: message at path)
    ├── RequestError                  an AdmissionRequest is not as kube-apiserver sends it (names the field)
    └── UsageError                    the caller asked for something impossible (bad flag value, ...)

Evaluation never raises: a rule that cannot be evaluated becomes an ``error`` Result whose ``code`` is
one of EVAL_CODES. Codes are snake_case and stable; they appear in CLI output, JSON reports and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Load problem codes.
FILE_NOT_FOUND = "file_not_found"  # a path given does not exist
READ_ERROR = "read_error"  # the file exists but cannot be read or decoded
YAML_SYNTAX = "yaml_syntax"  # not valid YAML or JSON
NOT_AN_OBJECT = "not_an_object"  # a document is not a mapping with apiVersion and kind
UNKNOWN_KIND = "unknown_kind"  # apiVersion/kind is not a document the engine loads
SCHEMA_INVALID = "schema_invalid"  # the document fails its JSON Schema
CEL_COMPILE = "cel_compile"  # a CEL expression does not parse or uses an unknown function
UNDECLARED_REFERENCE = "undeclared_reference"  # a CEL expression reads a name its document does not bind
CEL_TYPE = "cel_type"  # a CEL expression cannot yield the type its field needs (bool, string)
DUPLICATE_NAME = "duplicate_name"  # two policies (or exceptions) share a name
UNKNOWN_POLICY = "unknown_policy"  # an exception names a policy that is not loaded
INVALID_VALUE = "invalid_value"  # a field is well-formed but its value is wrong (a bad date, ...)
UNSUPPORTED = "unsupported"  # a valid document using a feature the engine does not run (Rego, ...)
# A policy lacks the GovernanceConfig facts it needs: the code of its skip result, and a problem (exit 2)
# under check --require-config.
NOT_CONFIGURED = "not_configured"

LOAD_CODES = frozenset(
    {
        FILE_NOT_FOUND,
        READ_ERROR,
        YAML_SYNTAX,
        NOT_AN_OBJECT,
        UNKNOWN_KIND,
        SCHEMA_INVALID,
        CEL_COMPILE,
        UNDECLARED_REFERENCE,
        CEL_TYPE,
        DUPLICATE_NAME,
        UNKNOWN_POLICY,
        INVALID_VALUE,
        UNSUPPORTED,
        NOT_CONFIGURED,
    }
)

# Evaluation result codes (Result.code on outcome "error").
EVAL_ERROR = "eval_error"  # the expression raised a CEL error (no such key, bad overload, ...)
EVAL_BUDGET = "budget_exceeded"  # the expression ran over its cost or time budget
EVAL_TYPE = "type_error"  # a validation or match condition returned a non-boolean
PARAM_NOT_FOUND = "param_not_found"  # a binding's params could not be found
EVAL_PARENT = "parent_unavailable"  # a scale request's parent workload could not be read or scaled
EVAL_RESERVATION = "reservation_unavailable"  # the GPU reservation store could not decide (quota policy)

EVAL_CODES = frozenset({EVAL_ERROR, EVAL_BUDGET, EVAL_TYPE, PARAM_NOT_FOUND, EVAL_PARENT, EVAL_RESERVATION})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we know."""

    file: str
    line: int
    code: str
    message: str
    path: str = ""  # field path inside the document, e.g. spec.validations[2].expression

    def render(self) -> str:
        where = f" (at {self.path})" if self.path else ""
        return f"{self.file}:{self.line}: {self.code}: {self.message}{where}"


class PolicyEngineError(Exception):
    """Base of the exceptions the core raises on purpose."""

    code = "policyengine_error"


class LoadError(PolicyEngineError):
    """Loading failed; nothing was changed. ``problems`` lists every problem found, in file order."""

    code = "load_error"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class RequestError(PolicyEngineError):
    """An AdmissionRequest the codec cannot read; the message names the field (``request.uid ...``)."""

    code = "invalid_request"


class UsageError(PolicyEngineError):
    """The caller asked for something the engine cannot do as asked."""

    code = "usage_error"
