"""One request's policies run one after another: what each is run with, built once per request, and the
common path of a policy on the request's own object inlined (``Engine`` keeps the per-expression rules:
conditions, validations, messages, exceptions)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from policyengine import errors
from policyengine.cel import Activation, Budget
from policyengine.compiled import CompiledPolicy
from policyengine.model import Inventory, Request, Result
from policyengine.results import error_result
from policyengine.workloads.podobjects import run_policy

if TYPE_CHECKING:
    from policyengine.engine import Engine


@dataclass(slots=True)
class PolicyRun:
    """What every policy of one request is run with: built once per request, not once per policy."""

    engine: Engine
    request: Request
    inventory: Inventory
    base: Activation
    now: datetime
    annotations: dict[str, str]
    expired: set[str]
    budget: Budget  # the one every expression of this request runs under
    compiled: CompiledPolicy | None = None  # the policy under way (they run one at a time)
    # The request's activation with ``params`` and no variables, by params object: shared by the
    # policies with the same params (most read the GovernanceConfig), since an activation is never
    # changed once made. (params, activation, the shared conditions' values on it), so an id is only
    # ever matched with its own object.
    plain: dict[int, tuple[Any, Activation, dict[int, Any]]] = field(default_factory=dict)

    def run(self, compiled: CompiledPolicy, results: list[Result]) -> None:
        """``compiled``'s results on the request, after its exceptions, appended to ``results``."""
        engine = self.engine
        params = engine._simple.get(id(compiled), _GENERAL)
        try:
            if params is _GENERAL:
                self._general(compiled, results)
                return
            # A simple policy (``simple_policies``): run_policy's work, inlined.
            known = self.plain.get(id(params))
            if known is None or known[0] is not params:
                known = self._plain(params)
            plain = known[1]
            if compiled.conditions:
                held = engine._conditions(compiled, plain, self.budget, known[2])
                if held is not None:
                    results.append(held)
                    return
            variables = compiled.variables
            activation = self.base.extend({"params": params}, variables) if variables else plain
            results.extend(engine._validations(compiled, activation, self.annotations, self.budget))
            if variables:
                activation.release()
        except Exception as err:  # one broken rule never hides the others' results
            results.append(internal_error(compiled, f"evaluation failed: {type(err).__name__}: {err}"))

    def _general(self, compiled: CompiledPolicy, results: list[Result]) -> None:
        """A policy with exceptions, a paramRef, pod templates or conditions reading variables."""
        engine, policy = self.engine, compiled.policy
        if policy.param_ref is None:
            params = engine._config_params if policy.uses_config_params else policy.params
            if not policy.pod_templates:
                activation = self.base.extend({"params": params}, compiled.variables)
                found = engine._evaluate_policy(compiled, activation, self.annotations, self.budget)
                results.extend(
                    engine._apply_exceptions(
                        policy, found, self.request, activation, self.now, self.expired, self.budget
                    )
                )
                activation.release()
                return
            paramsets: Sequence[Any] = (params,)
        else:
            paramsets = engine._params_for(policy, self.inventory, self.request.namespace, results)
        self.compiled = compiled
        for params in paramsets:
            results.extend(
                run_policy(
                    policy, self.request, self.base, params, compiled.variables, self.evaluate, self.unless
                )
            )

    def _plain(self, params: Any) -> tuple[Any, Activation, dict[int, Any]]:
        """The request's activation with ``params`` bound and no variables, made once per params, with
        the values of the shared conditions found on it so far."""
        known: tuple[Any, Activation, dict[int, Any]] = (params, self.base.extend({"params": params}), {})
        self.plain[id(params)] = known
        return known

    def evaluate(self, activation: Activation) -> list[Result]:
        assert self.compiled is not None
        return self.engine._evaluate_policy(self.compiled, activation, self.annotations, self.budget)

    def unless(self, results: list[Result], activation: Activation) -> list[Result]:
        assert self.compiled is not None
        return self.engine._apply_exceptions(
            self.compiled.policy, results, self.request, activation, self.now, self.expired, self.budget
        )


_GENERAL: Any = object()


def simple_policies(engine: Engine) -> Iterator[tuple[CompiledPolicy, Any]]:
    """The policies run on the request's own object with fixed params and no exceptions, whose
    matchConditions read no ``variables`` (the name is nowhere in their text), or that have none, with
    their params: their conditions run on the activation every policy with the same params shares,
    and only a policy whose conditions hold gets its own, with its lazy variables."""
    for c in engine._policies:
        policy = c.policy
        if policy.param_ref is not None or policy.pod_templates or policy.name in engine._exceptions:
            continue
        if c.variables and any("variables" in e.source for _, e in c.conditions):
            continue
        yield c, engine._config_params if policy.uses_config_params else policy.params


def shared_conditions(policies: Sequence[CompiledPolicy]) -> frozenset[int]:
    """The matchConditions (by id: the compiler returns one object per text) that more than one policy
    has and that can charge no cost (``meterless``: field reads, comparisons, logic; no call, macro or
    variable). Such a condition's value is a function of the activation alone, so on an activation the
    policies share it is evaluated once per request; one that charges is evaluated, and charged, every
    time."""
    seen: dict[int, int] = {}
    for c in policies:
        for _, cond in c.conditions:
            if getattr(cond, "meterless", False) is True:
                seen[id(cond)] = seen.get(id(cond), 0) + 1
    return frozenset(key for key, count in seen.items() if count > 1)


def internal_error(compiled: CompiledPolicy, message: str) -> Result:
    """An error the expressions did not cause (a request the backend cannot hold, a backend fault)."""
    return error_result(compiled.policy, message[:300], code=errors.EVAL_ERROR, action=compiled.action)
