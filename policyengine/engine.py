"""The one decision function: ``Engine(policy_set).evaluate(request, inventory=..., now=...) -> Decision``.

The engine receives the world (time, inventory, config) as arguments and never raises on bad input: a rule
that cannot be evaluated becomes an ``error`` Result with a code, so one broken rule never hides the others.
All CEL is compiled when the engine is built; a request is converted to CEL values once and shared by
every policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from operator import attrgetter
from typing import Any

from policyengine import errors
from policyengine.cel import BUDGET_OVERRIDE, DEFAULT_BUDGET, Activation, Budget, CelEvalError, CompiledExpr
from policyengine.cel.lib.kyverno import KYVERNO_OBJECTS
from policyengine.cel.lib.kyverno_resource import reading
from policyengine.charging import Charge, Ledger
from policyengine.codec import request_binding
from policyengine.compiled import CompiledPolicy, compile_policy
from policyengine.judgement import failed, judged
from policyengine.match import exception_matches, matches
from policyengine.matchindex import MatchIndex
from policyengine.model import (
    Action,
    Decision,
    Inventory,
    Outcome,
    Policy,
    PolicyException,
    Request,
    Result,
)
from policyengine.params import lookup
from policyengine.policyrun import PolicyRun, internal_error, shared_conditions, simple_policies
from policyengine.policyset import PolicySet
from policyengine.provenance import AttestationStore
from policyengine.resources import inventory_finder
from policyengine.results import error_result, excepted, kind_of
from policyengine.scale import ParentLookup, is_scale, judge, merged, stand_in
from policyengine.trust import load_attestation_store
from policyengine.views import ViewProvider, views_for

EMPTY_INVENTORY = Inventory()
# The enum members the per-result tests compare against, read once: an enum class attribute costs as
# much as the rest of the test, and these run for every result of every request.
_DENY, _WARN = Action.DENY, Action.WARN
_FAIL, _ERROR = Outcome.FAIL, Outcome.ERROR
_UNKNOWN: Any = object()

# Optional observation hook, entered around each policy's evaluation (the webhook times spans with it).
PolicyObserver = Callable[[Policy], AbstractContextManager[object]]


class Engine:
    """Decides requests against one policy set, every expression compiled when it is built.

    ``views`` computes the bindings beyond Kubernetes' own once per request; by default the standard
    ``workload`` and ``inventory`` views (``views.default_views``), which the shipped packs read, so
    ``Engine(load_policy_set([]))`` runs the packs. Building it raises LoadError when the attestation
    material its GovernanceConfig names cannot be read.
    """

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        budget: Budget = DEFAULT_BUDGET,
        views: ViewProvider | None = None,
        background: bool = False,
    ) -> None:
        self.policy_set = policy_set
        self.budget = budget
        # The attestation store the default views read (None with views of the caller's own), so that
        # a server can report the signatures about to expire.
        self.attestations: AttestationStore | None = None
        if views is None:
            self.attestations = load_attestation_store(policy_set.config, policy_set.config_line)
            defer = getattr(policy_set.compiler.backend, "defers", False)  # cel.deferred
            views = views_for(policy_set, self.attestations, existing=background, defer=defer)
        self._views = views
        # Native policies' ``params``: the GovernanceConfig, one read-only copy for every request.
        self._config_params = dict(policy_set.config)
        compile_ = policy_set.compiler.compile
        self._policies = tuple(
            compile_policy(p, policy_set)
            for p in policy_set.policies
            # Kyverno's evaluation switches: a policy runs at admission, or in a background scan, if enabled
            if (p.background if background else p.admission)
        )
        self._index = MatchIndex(self._policies, attrgetter("policy.match"))
        self._exceptions: dict[str, list[tuple[PolicyException, tuple[CompiledExpr, ...]]]] = {}
        for exc in policy_set.exceptions:
            conds = tuple(compile_(c.expression.source) for c in exc.match_conditions)
            for name in exc.policies:
                self._exceptions.setdefault(name, []).append((exc, conds))
        self._simple = {id(c): params for c, params in simple_policies(self)}
        # The matchConditions several policies share and that can charge nothing (read no variables,
        # call nothing): evaluated once per request on an activation the policies share (``PolicyRun``).
        self._shared_conditions = shared_conditions(self._policies)

    @property
    def digest(self) -> str:
        return self.policy_set.digest

    def applicable(self, request: Request, inventory: Inventory = EMPTY_INVENTORY) -> list[Policy]:
        ns = inventory.namespaces.get(request.namespace) if request.namespace else None
        chosen = (c.policy for c in self._policies if self.policy_set.needs(c.policy.name) is None)
        return [p for p in chosen if matches(p.match, request, ns)]

    def unevaluated(
        self, request: Request, *, inventory: Inventory = EMPTY_INVENTORY, message: str, code: str
    ) -> Decision:
        """The decision on a request that could not be evaluated (in time): every policy that matches it
        has an error Result, so it is denied unless every one of them is failurePolicy Ignore. A scale
        request counts the policies on its parent workload too."""
        subjects = [request, stand_in(request)] if is_scale(request) else [request]
        chosen = {p.name: p for s in subjects for p in self.applicable(s, inventory)}
        results = tuple(error_result(p, message, code=code) for p in chosen.values())
        allowed = not any(r.denies for r in results)
        return Decision(request=request, results=results, allowed=allowed, policy_set_digest=self.digest)

    def evaluate(
        self,
        request: Request,
        *,
        inventory: Inventory = EMPTY_INVENTORY,
        now: datetime,
        observe: PolicyObserver | None = None,
        parents: ParentLookup | None = None,
        ledger: Ledger | None = None,
    ) -> Decision:
        """``parents`` reads the workload a scale request scales (``policyengine.scale``); without it,
        a scale request of a workload some policy governs is an error result. ``ledger``: charging.py."""
        with reading(inventory_finder(inventory)):  # Kyverno's resource.Get/List read the inventory
            if not is_scale(request):
                return self._evaluate(request, inventory, now, observe, ledger)
            own = self._evaluate(request, inventory, now, observe)  # for a Scale: policies on the Scale
            judged = judge(
                request,
                parents,
                lambda update: self._evaluate(update, inventory, now, observe, ledger),
                lambda update, why: self.unevaluated(
                    update, inventory=inventory, message=why, code=errors.EVAL_PARENT
                ),
            )
        return merged(judged, own)

    def _evaluate(
        self,
        request: Request,
        inventory: Inventory,
        now: datetime,
        observe: PolicyObserver | None,
        ledger: Ledger | None = None,
    ) -> Decision:
        ns_object = inventory.namespaces.get(request.namespace) if request.namespace else None
        chosen = self._index.select(request, ns_object)
        if not chosen:
            if ledger is not None:  # a DELETE no policy judges still ends the workload's reservation
                ledger.unjudged(request, inventory, self._views, self.policy_set.config, now)
            return Decision(request=request, results=(), allowed=True, policy_set_digest=self.digest)

        bindings: dict[str, Any] = {
            "object": request.object,
            "oldObject": request.old_object,
            "request": request_binding(request),
            "namespaceObject": ns_object,
            **KYVERNO_OBJECTS,  # json.unmarshal(s), yaml.parse(s), resource.Get(...): calls on these
        }
        results: list[Result] = []
        annotations: dict[str, str] = {}
        expired: set[str] = set()
        base: Activation | None = None
        charge: Charge | None = None
        try:
            bindings.update(self._views(request, inventory, self.policy_set.config, now))
            charge = (
                ledger.open(request, bindings, inventory, self.policy_set.config, now) if ledger else None
            )
            base = self.policy_set.compiler.backend.bind(bindings)
        except Exception as err:  # an unrepresentable request is an error result, never a crash
            results.extend(internal_error(c, f"the request cannot be evaluated: {err}") for c in chosen)
        if base is not None:
            budget = BUDGET_OVERRIDE.get() or self.budget  # read once: it is set around a whole evaluation
            policy_run = PolicyRun(self, request, inventory, base, now, annotations, expired, budget)
            for compiled in chosen:
                if compiled.unconfigured is not None:  # lacks its config facts
                    results.append(compiled.unconfigured)
                elif observe is None:
                    policy_run.run(compiled, results)
                else:
                    with observe(compiled.policy):
                        policy_run.run(compiled, results)

        if ledger is not None and charge is not None:
            results = ledger.settled(charge, results, [c.policy for c in chosen], now)
        return self._decided(request, results, annotations, expired)

    def _decided(
        self, request: Request, results: list[Result], annotations: dict[str, str], expired: set[str]
    ) -> Decision:
        # One pass for ``Result.denies`` and the warnings: most results pass or skip and need one test.
        warnings: list[str] = []
        denied = False
        for r in results:
            outcome = r.outcome
            if outcome is _FAIL or outcome is _ERROR:
                action = r.action
                if action is _DENY:
                    denied = True
                elif action is _WARN and outcome is _FAIL:
                    warnings.append(f"{r.policy}: {r.message}")
        return Decision(
            request=request,
            results=tuple(results),
            allowed=not denied,
            warnings=tuple(warnings),
            audit_annotations=annotations,
            policy_set_digest=self.digest,
            exceptions_expired=tuple(sorted(expired)),
        )

    # -- one policy ---------------------------------------------------------------------------------------

    def _params_for(
        self, policy: Policy, inventory: Inventory, namespace: str, results: list[Result]
    ) -> Sequence[Any]:
        if policy.param_ref is None:
            return [self._config_params if policy.uses_config_params else policy.params]
        found = lookup(policy.param_ref, self.policy_set.param_objects, inventory, namespace)
        if found.error is None:
            return found.objects
        # Kubernetes denies a misconfigured binding whatever its validationActions (under failurePolicy
        # Fail; under Ignore it is recorded without enforcing, as for any other error).
        message = f"failed to configure binding: {found.error}"
        results.append(error_result(policy, message, code=errors.PARAM_NOT_FOUND, action=Action.DENY))
        return []

    def _evaluate_policy(
        self, compiled: CompiledPolicy, activation: Activation, annotations: dict[str, str], budget: Budget
    ) -> list[Result]:
        if compiled.conditions:
            held = self._conditions(compiled, activation, budget)
            if held is not None:
                return [held]
        return self._validations(compiled, activation, annotations, budget)

    def _validations(
        self, compiled: CompiledPolicy, activation: Activation, annotations: dict[str, str], budget: Budget
    ) -> list[Result]:
        """The validations' results, once the matchConditions hold; the audit annotations recorded."""
        out: list[Result] = []
        passes = compiled.passes
        for index, (_, expr, _, _) in enumerate(compiled.validations):
            try:
                value = expr.evaluate(activation, budget)
            except CelEvalError as err:
                out.append(failed(compiled, index, err))
                continue
            # Most validations pass: their shared Result, without another call.
            out.append(passes[index] if value is True else judged(compiled, index, value, activation, budget))
        for key, expr in compiled.annotations:
            try:
                value = expr.evaluate(activation, budget)
            except CelEvalError:
                continue
            if value is not None:
                annotations[f"{compiled.policy.name}/{key}"] = str(value)
        return out

    def _conditions(
        self,
        compiled: CompiledPolicy,
        activation: Activation,
        budget: Budget,
        known: dict[int, Any] | None = None,
    ) -> Result | None:
        """matchConditions: any false -> a skip; otherwise any error -> an error under failurePolicy;
        None when they all hold. ``known``: the values of shared conditions already evaluated on this
        very activation (by id of the condition), which this fills in."""
        policy, action = compiled.policy, compiled.action
        condition_error: str | None = None
        shared = self._shared_conditions
        for index, (name, cond) in enumerate(compiled.conditions):
            try:
                if known is not None and id(cond) in shared:
                    value = known.get(id(cond), _UNKNOWN)
                    if value is _UNKNOWN:
                        value = known[id(cond)] = cond.evaluate(activation, budget)
                else:
                    value = cond.evaluate(activation, budget)
            except CelEvalError as err:
                condition_error = condition_error or f"matchCondition {name!r}: {err}"
                continue
            if value is False:
                return compiled.condition_skips[index]
            if value is not True:
                condition_error = (
                    condition_error or f"matchCondition {name!r} returned {kind_of(value)}, not bool"
                )
        if condition_error is not None:
            return error_result(policy, condition_error, code=errors.EVAL_ERROR, action=action)
        return None

    # -- exceptions ---------------------------------------------------------------------------------------

    def _apply_exceptions(
        self,
        policy: Policy,
        results: list[Result],
        request: Request,
        activation: Activation,
        now: datetime,
        expired: set[str],
        budget: Budget,
    ) -> list[Result]:
        candidates = self._exceptions.get(policy.name)
        if not candidates or not any(r.outcome in (Outcome.FAIL, Outcome.ERROR) for r in results):
            return results
        used: PolicyException | None = None
        for exc, conditions in candidates:
            if not exception_matches(exc, request):
                continue
            if exc.expires is not None and exc.expires <= now:
                expired.add(exc.name)
                continue
            if all(self._condition_holds(c, activation, budget) for c in conditions):
                used = exc
                break
        if used is None:
            return results
        return [excepted(r, used) if r.outcome in (Outcome.FAIL, Outcome.ERROR) else r for r in results]

    def _condition_holds(self, cond: CompiledExpr, activation: Activation, budget: Budget) -> bool:
        try:
            return cond.evaluate(activation, budget) is True
        except CelEvalError:
            return False  # an exception that cannot be evaluated never exempts anything
