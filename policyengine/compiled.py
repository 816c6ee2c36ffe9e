"""A policy as the engine runs it: every expression compiled, and the results that are the same on every
request (a passing validation's, a false matchCondition's skip, the skip of a policy its set cannot
configure) built once with it, since Results are immutable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policyengine.cel import CompiledExpr
from policyengine.cel.variables import VariableDefs
from policyengine.model import Action, Outcome, Policy, Result, Validation
from policyengine.policyset import PolicySet
from policyengine.results import make_result, primary_action


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy with every expression compiled, built once."""

    policy: Policy
    action: Action
    conditions: tuple[tuple[str, CompiledExpr], ...]
    variables: tuple[tuple[str, CompiledExpr | None, Any], ...]
    # (validation, expression, messageExpression, fieldPathExpression)
    validations: tuple[tuple[Validation, CompiledExpr, CompiledExpr | None, CompiledExpr | None], ...]
    annotations: tuple[tuple[str, CompiledExpr], ...]
    # A passing validation's Result is the same every time: built once, shared (Results are immutable).
    passes: tuple[Result, ...] = ()
    # So are the skips: one per matchCondition found false, and the policy's own when the policy set
    # lacks the config facts it needs (its config is fixed with the set).
    condition_skips: tuple[Result, ...] = ()
    unconfigured: Result | None = None


def compile_policy(p: Policy, policy_set: PolicySet) -> CompiledPolicy:
    compile_: Callable[[str], CompiledExpr] = policy_set.compiler.compile
    action = primary_action(p.actions)
    return CompiledPolicy(
        policy=p,
        action=action,
        conditions=tuple((c.name, compile_(c.expression.source)) for c in p.match_conditions),
        variables=VariableDefs(
            (v.name, compile_(v.expression.source) if v.expression else None, v.value) for v in p.variables
        ),
        validations=tuple(
            (
                v,
                compile_(v.expression.source),
                compile_(v.message_expression.source) if v.message_expression else None,
                compile_(v.field_path_expression.source) if v.field_path_expression else None,
            )
            for v in p.validations
        ),
        annotations=tuple((a.name, compile_(a.expression.source)) for a in p.audit_annotations),
        passes=tuple(
            make_result(p, action, Outcome.PASS, "", index=i, validation=v)
            for i, v in enumerate(p.validations)
        ),
        condition_skips=tuple(
            make_result(p, action, Outcome.SKIP, f"matchCondition {c.name!r} is false")
            for c in p.match_conditions
        ),
        unconfigured=policy_set.not_configured(p),
    )
