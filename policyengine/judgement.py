"""A validation's Result once its expression has run: the failure with its message and located field,
or the error of an expression that failed or gave no bool (a passing one's Result is built with the
policy, ``CompiledPolicy.passes``)."""

from __future__ import annotations

from typing import Any

from policyengine import errors
from policyengine.cel import Activation, Budget, CelEvalError, CompiledExpr
from policyengine.compiled import CompiledPolicy
from policyengine.model import Outcome, Result, Validation
from policyengine.results import error_result, kind_of, make_result

MAX_MESSAGE = 5 * 1024


def failed(compiled: CompiledPolicy, index: int, err: CelEvalError) -> Result:
    """The result of a validation whose expression could not be evaluated."""
    validation = compiled.validations[index][0]
    message = f"expression {validation.expression.source!r}: {err}"
    return error_result(
        compiled.policy,
        message,
        code=err.code,
        action=compiled.action,
        index=index,
        validation=validation,
    )


def judged(
    compiled: CompiledPolicy, index: int, value: Any, activation: Activation, budget: Budget
) -> Result:
    """The result of a validation whose expression gave ``value``, not True (a pass is the policy's own
    Result, ``CompiledPolicy.passes``)."""
    validation, _, message_expr, path_expr = compiled.validations[index]
    policy, action, source = compiled.policy, compiled.action, validation.expression.source
    if value is False:
        text = message(validation, message_expr, activation, budget)
        # The located path, else the validation's own (make_result's default): no copy of the result.
        found_path = None if path_expr is None else field_path(path_expr, activation, budget)
        return make_result(
            policy,
            action,
            Outcome.FAIL,
            text,
            index=index,
            validation=validation,
            field_path=found_path,
        )
    text = f"expression {source!r} returned {kind_of(value)}, not bool"
    return error_result(
        policy, text, code=errors.EVAL_TYPE, action=action, index=index, validation=validation
    )


def field_path(path_expr: CompiledExpr, activation: Activation, budget: Budget) -> str | None:
    try:
        value = path_expr.evaluate(activation, budget)
    except CelEvalError:
        return None  # the location is a courtesy: a failing path expression never hides the finding
    return value if isinstance(value, str) and value else None


def message(
    validation: Validation, message_expr: CompiledExpr | None, activation: Activation, budget: Budget
) -> str:
    if message_expr is not None:
        try:
            value = message_expr.evaluate(activation, budget)
        except CelEvalError:
            value = None
        # The cap is in bytes, as Kubernetes counts it.
        if (
            isinstance(value, str)
            and value.strip()
            and "\n" not in value
            and len(value.encode()) <= MAX_MESSAGE
        ):
            return value.strip()
    if validation.message:
        return validation.message
    return f"failed expression: {validation.expression.source}"
