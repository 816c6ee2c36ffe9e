"""Building Results: the one failurePolicy rule (``error_result``), passes, failures and exceptions.

Every Result the engine, the webhook and the reports make comes from here, so what a result carries
(the policy's category, severity, remediation and source; the validation's reason and field path) and
how an error is enforced are decided once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from policyengine.model import Action, FailurePolicy, Outcome, Policy, PolicyException, Result, Validation

_ACTION_RANK = (Action.DENY, Action.WARN, Action.AUDIT)


def primary_action(actions: Iterable[Action]) -> Action:
    chosen = set(actions)
    return next((a for a in _ACTION_RANK if a in chosen), Action.AUDIT)


def error_result(
    policy: Policy,
    message: str,
    *,
    code: str,
    action: Action | None = None,
    index: int | None = None,
    validation: Validation | None = None,
) -> Result:
    """The one failurePolicy rule: an error takes ``action`` (by default the policy's primary action)
    under failurePolicy Fail, and is recorded without being enforced (audit) under Ignore."""
    if policy.failure_policy is not FailurePolicy.FAIL:
        action = Action.AUDIT
    elif action is None:
        action = primary_action(policy.actions)
    return make_result(policy, action, Outcome.ERROR, message, index=index, validation=validation, code=code)


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def make_result(
    policy: Policy,
    action: Action,
    outcome: Outcome,
    message: str,
    *,
    index: int | None = None,
    validation: Validation | None = None,
    code: str | None = None,
    field_path: str | None = None,
) -> Result:
    """``field_path``: where the finding is, when known (else the validation's own field path)."""
    return Result(
        policy=policy.name,
        action=action,
        outcome=outcome,
        message=message,
        validation=index,
        reason=validation.reason if validation else None,
        code=code,
        field_path=field_path or (validation.field_path if validation else None),
        category=policy.category,
        severity=policy.severity,
        remediation=policy.remediation,
        policy_source=policy.source,
    )


def excepted(result: Result, exc: PolicyException) -> Result:
    return replace(result, outcome=Outcome.EXCEPTED, exception=exc.name)
