"""Answering one AdmissionReview: evaluate off the event loop within a time budget, record, encode.

Evaluation is CPU-bound, so it runs in a thread pool. ``timeout`` is the budget of the whole request,
from its arrival to its answer: evaluation must end ``RECORD_SHARE`` of it before the deadline, leaving
the rest for recording. Over budget, the request is decided by failurePolicy semantics instead: every
policy that matches the request gets an ``error`` result with code ``budget_exceeded``, which denies
unless the policy's failurePolicy is Ignore (then it is audit-only). So a timed-out request is denied
unless every matched policy is Ignore. The late evaluation finishes in the background (the CEL budget
bounds it) and is discarded. Every decision, timed out or not, is recorded before it is answered; one
that is not recorded by the deadline is answered as an error (RecordFailed), so kube-apiserver applies
the webhook's failurePolicy before its own timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from policyengine import errors
from policyengine.cel import budget_override
from policyengine.charging import Ledger
from policyengine.engine import Engine
from policyengine.model import Action, Decision, Inventory, Outcome, Request
from policyengine.scale import ParentLookup
from webhook.errors import RecordFailed
from webhook.inventories import InventorySource, with_namespace
from webhook.onloop import OutOfSlice, SlicedTimings, Timings, light, loop_budget, may_wait
from webhook.recorder import SOURCE_ADMISSION, DecisionRecorder
from webhook.review import Review, review_response
from webhook.telemetry import Telemetry

DEFAULT_TIMEOUT = 3.0  # seconds; kube-apiserver waits timeoutSeconds (5 in our webhook configuration)
RECORD_SHARE = 0.25  # of the budget, kept after evaluation for recording the decision
# Each action's and outcome's value, looked up (an enum's ``.value`` costs a descriptor call per result).
_VALUE: dict[Action | Outcome, str] = {member: member.value for member in (*Action, *Outcome)}


@dataclass(frozen=True)
class Answer:
    review: dict[str, Any]
    decision: Decision
    audit_index: int | None
    timed_out: bool


def evaluate(
    engine: Engine,
    request: Request,
    inventory: Inventory,
    timings: Timings,
    parents: ParentLookup | None = None,
    ledger: Ledger | None = None,
) -> Decision:
    now = datetime.now(UTC)
    return engine.evaluate(
        request, inventory=inventory, now=now, observe=timings, parents=parents, ledger=ledger
    )


def over_budget(engine: Engine, request: Request, inventory: Inventory, timeout: float) -> Decision:
    """failurePolicy applied to every policy that matches, as if each had failed to evaluate."""
    message = f"evaluation did not finish within the webhook's {timeout:g}s budget"
    return engine.unevaluated(request, inventory=inventory, message=message, code=errors.EVAL_BUDGET)


class Admitter:
    def __init__(
        self,
        *,
        inventory: InventorySource,
        recorder: DecisionRecorder,
        telemetry: Telemetry,
        executor: Executor,
        timeout: float = DEFAULT_TIMEOUT,
        parents: ParentLookup | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.inventory = inventory
        self.ledger = ledger  # GPU reservations made as requests are allowed (None: none)
        self.parents = parents  # scale requests are judged through the workload (None: an error result)
        self.recorder = recorder
        self.telemetry = telemetry
        self.executor = executor
        self.timeout = timeout
        self._weighed: tuple[Engine, bool] | None = None  # the last policy set served, and if it is light

    def decide_by(self, deadline: float) -> float:
        """When evaluation (and everything before it) must be over, for a request due at ``deadline``."""
        return deadline - self.timeout * RECORD_SHARE  # the app reads and parses by the same instant

    async def admit(
        self,
        engine: Engine,
        review: Review,
        *,
        deadline: float | None = None,
        hold: Callable[[asyncio.Future[Any]], None] | None = None,
        inline: bool = False,
    ) -> Answer:
        """``deadline`` (loop time) is when the answer is due (default: ``timeout`` from now); ``hold``
        is given every job this request leaves running in a thread, so its memory stays accounted;
        ``inline``: a small review, evaluated on the event loop first (``webhook.onloop``)."""
        request = review.request
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.timeout
        with self.telemetry.span("admission", partial(_request_attributes, request)) as span:
            inventory = with_namespace(self.inventory.current(), request.namespace)
            started = time.perf_counter()
            timings: Timings
            decision = None
            if inline and self._light(engine) and not may_wait(request, self.ledger):
                timings = SlicedTimings()
                decision = self._on_loop(engine, request, inventory, timings, span)
            timed_out = False
            if decision is None:
                timings = Timings()
                decision = await self._in_pool(engine, request, inventory, timings, deadline, hold)
                if decision is None:
                    timed_out = True
                    decision = over_budget(engine, request, inventory, self.timeout)
                    self.telemetry.add("timeouts", 1)
                    span.add_event("evaluation over budget", {"timeout_s": self.timeout})
            self.telemetry.observe("evaluation_duration", time.perf_counter() - started)
            if not timed_out:
                self._policy_telemetry(span, timings, decision)
            index = await self._record(decision, deadline, hold)
            span.set_attribute("policyengine.verdict", decision.verdict)
            if index is not None:
                span.set_attribute("policyengine.audit_index", index)
            self.telemetry.count_all(
                "decisions", [(r.policy, _VALUE[r.action], _VALUE[r.outcome]) for r in decision.results]
            )
            answer = review_response(review.api_version, decision, audit_index=index)
            return Answer(answer, decision, index, timed_out)

    def _light(self, engine: Engine) -> bool:
        """Whether ``engine``'s policies may be evaluated on the loop (worked out once per policy set)."""
        if self._weighed is None or self._weighed[0] is not engine:
            self._weighed = (engine, light(engine.policy_set.policies))
        return self._weighed[1]

    def _on_loop(
        self, engine: Engine, request: Request, inventory: Inventory, timings: SlicedTimings, span: Span
    ) -> Decision | None:
        """The decision made on the event loop within its slice, or None when the slice ran out."""
        try:
            with budget_override(loop_budget(engine.budget)):
                return evaluate(engine, request, inventory, timings, self.parents, self.ledger)
        except OutOfSlice:
            self.telemetry.add("moved_to_pool", 1)
            span.add_event("evaluation moved to the pool", {"policies_evaluated": len(timings.spans)})
            return None

    async def _in_pool(
        self,
        engine: Engine,
        request: Request,
        inventory: Inventory,
        timings: Timings,
        deadline: float,
        hold: Callable[[asyncio.Future[Any]], None] | None,
    ) -> Decision | None:
        """The decision made in the evaluation pool, or None when it is not made by the deadline."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(
            self.executor,
            partial(evaluate, engine, request, inventory, timings, self.parents, self.ledger),
        )
        _forget_late_errors(job)
        if hold is not None:
            hold(job)
        try:
            # shield: on timeout the job is left to finish (it cannot be interrupted), not cancelled,
            # so that ``hold`` sees when it really ends.
            budget = max(0.0, self.decide_by(deadline) - loop.time())
            return await asyncio.wait_for(asyncio.shield(job), budget)
        except TimeoutError:
            return None

    def _policy_telemetry(self, parent: Span, timings: Timings, decision: Decision) -> None:
        """Each policy's duration (a histogram by policy) and outcomes: attributes of the admission span
        and an event per policy that did not pass; a child span per policy only when asked for and the
        trace is sampled (a span costs more than evaluating a small request)."""
        self.telemetry.record_policies(timings.spans)
        if not parent.is_recording():
            return
        outcomes: dict[str, set[str]] = {}
        for r in decision.results:
            outcomes.setdefault(r.policy, set()).add(_VALUE[r.outcome])
        _outcome_attributes(parent, timings, outcomes)
        if self.telemetry.policy_spans and parent.get_span_context().trace_flags.sampled:
            self._policy_spans(parent, timings, outcomes)

    def _policy_spans(self, parent: Span, timings: Timings, outcomes: dict[str, set[str]]) -> None:
        context = trace.set_span_in_context(parent)
        for policy, start, end in timings.spans:
            seen = outcomes.get(policy.name, set())
            span = self.telemetry.tracer.start_span(
                f"policy {policy.name}",
                context=context,
                start_time=start,
                attributes={
                    "policyengine.policy": policy.name,
                    "policyengine.outcomes": sorted(seen),
                    "policyengine.category": policy.category,
                },
            )
            if "error" in seen:
                span.set_status(Status(StatusCode.ERROR, "evaluation error"))
            span.end(end_time=end)

    async def _record(
        self, decision: Decision, deadline: float, hold: Callable[[asyncio.Future[Any]], None] | None
    ) -> int | None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        with self.telemetry.span("audit.append") as span:
            if not getattr(self.recorder, "blocking", True):  # keeps nothing: no thread to wait in
                return self.recorder.record(decision, source=SOURCE_ADMISSION)
            try:
                job = self._recording(decision)
                _forget_late_errors(job)
                if hold is not None:
                    hold(job)
                try:
                    index = await asyncio.wait_for(asyncio.shield(job), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise TimeoutError(
                        f"not recorded within the webhook's {self.timeout:g}s budget"
                    ) from None
            except Exception as err:
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, type(err).__name__))
                why = str(err) if isinstance(err, TimeoutError) else type(err).__name__
                raise RecordFailed(f"the decision could not be recorded: {why}") from err
            finally:
                self.telemetry.observe("audit_duration", time.perf_counter() - started)
            if index is not None:
                span.set_attribute("policyengine.audit_index", index)
        return index

    def _recording(self, decision: Decision) -> asyncio.Future[int | None]:
        """The recording of ``decision`` under way: queued to the audit log's group commit when the
        recorder can (the loop awaits the entry being durable), else ``record`` in a thread of the
        default executor (not the evaluation pool: runaway evaluations cannot starve it)."""
        if getattr(self.recorder, "queued", False):
            return asyncio.wrap_future(self.recorder.submit(decision, source=SOURCE_ADMISSION))  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(None, partial(self.recorder.record, decision, source=SOURCE_ADMISSION))


def _forget_late_errors(job: asyncio.Future[Any]) -> None:
    """A job left running past its deadline may still fail; nobody awaits it any more, so its error is
    retrieved here (the request was answered already) instead of logged as never retrieved."""
    job.add_done_callback(lambda done: done.cancelled() or done.exception())


def _outcome_attributes(span: Span, timings: Timings, outcomes: dict[str, set[str]]) -> None:
    """The admission span's record of the policies: how many were evaluated, which failed and which
    could not be evaluated, and an event (with its outcomes, category and duration) per such policy."""
    failed = sorted(name for name, seen in outcomes.items() if "fail" in seen)
    errored = sorted(name for name, seen in outcomes.items() if "error" in seen)
    span.set_attribute("policyengine.policies_evaluated", len(timings.spans))
    span.set_attribute("policyengine.policies_failed", failed)
    span.set_attribute("policyengine.policies_errored", errored)
    for policy, start, end in timings.spans:
        seen = outcomes.get(policy.name, set())
        if "fail" in seen or "error" in seen:
            span.add_event(
                f"policy {policy.name}",
                {
                    "policyengine.policy": policy.name,
                    "policyengine.outcomes": sorted(seen),
                    "policyengine.category": policy.category,
                    "policyengine.duration_ms": (end - start) / 1e6,
                },
                timestamp=end,
            )


def _request_attributes(request: Request) -> dict[str, Any]:
    return {
        "k8s.admission.uid": request.uid,
        "k8s.admission.operation": request.operation,
        "k8s.kind": request.kind.kind,
        "k8s.namespace": request.namespace,
        "k8s.name": request.name,
        "k8s.admission.dry_run": request.dry_run,
    }
