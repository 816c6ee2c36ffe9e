"""The app's lifespan: the evaluation pool, the first policy load and inventory sync, the reload watch.

Policies are reloaded when their files change (polled every ``reload_interval``) or on SIGHUP; a reload
that meets files being written is done again once they settle. Every reload is logged and counted, and
the gauges of ``/metrics`` read the live services.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette

from policyengine.engine import Engine
from policyengine.provenance import EXPIRY_NOTICE
from policyengine.trust import trust_warnings
from webhook.admission import Admitter
from webhook.heap import set_apart
from webhook.logs import get_logger
from webhook.policies import MAX_NAMES_SHOWN, ReloadOutcome
from webhook.services import WebhookServices, audit_status
from webhook.servingcert import certificate_gauges

UNSTABLE_RETRY = 1.0  # seconds before a SIGHUP reload that met files being written is done again


def lifespan(services: WebhookServices) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Starlette's lifespan for an app serving ``services``."""

    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(
            max_workers=services.eval_threads, thread_name_prefix="policyengine-eval"
        )
        app.state.admitter = Admitter(
            inventory=services.inventory,
            recorder=services.recorder,
            telemetry=services.telemetry,
            executor=executor,
            timeout=services.timeout,
            parents=services.parents,
            ledger=services.ledger,
        )
        _register_gauges(services)
        services.inventory.start()
        await _start(services)
        reload_now = asyncio.Event()
        loop = asyncio.get_running_loop()
        if services.handle_sighup:
            loop.add_signal_handler(signal.SIGHUP, reload_now.set)
        watcher = asyncio.create_task(_watch(services, reload_now))
        _start_background(services)
        try:
            yield
        finally:
            await asyncio.to_thread(_stop_background, services)
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            if services.handle_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            services.inventory.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            services.telemetry.tracer_provider.force_flush()

    return run


async def _start(services: WebhookServices) -> None:
    """uvicorn accepts connections only after startup: load the first set (a --workers process) and let
    the inventory sync first, so that no request meets a half-started server. A failed load still starts
    the server, not ready, and is retried when the files change."""
    if not services.policies.ready:
        _report(services, await asyncio.to_thread(services.policies.reload), False, "startup")
    await asyncio.to_thread(_follow, services)
    deadline = time.monotonic() + services.startup_wait
    while not services.inventory.status()["ready"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _set_apart(services)


def _set_apart(services: WebhookServices) -> None:
    """Once a policy set is served, it and the imports are kept out of the collector's full passes."""
    if services.freeze_heap and services.policies.engine is not None:
        set_apart()


def _start_background(services: WebhookServices) -> None:
    """The background scan starts once the first set is loaded and the inventory synced (or waited for);
    the election first, so that a replica that leads publishes its first pass."""
    if services.leader is not None:
        services.leader.start()
    if services.background is not None:
        services.background.start()


def _stop_background(services: WebhookServices) -> None:
    if services.background is not None:
        services.background.stop()
    if services.leader is not None:
        services.leader.stop()  # releases the Lease: another replica takes over at its next step


async def _watch(services: WebhookServices, reload_now: asyncio.Event) -> None:
    policies = services.policies
    interval = services.reload_interval
    retry = False  # a SIGHUP reload that met files being written is done again, even without polling
    while True:
        if interval is None and not retry:
            await reload_now.wait()
        else:
            with suppress(TimeoutError):
                await asyncio.wait_for(reload_now.wait(), interval or UNSTABLE_RETRY)
        forced = reload_now.is_set() or retry
        reload_now.clear()
        retry = False
        try:
            if forced or await asyncio.to_thread(policies.changed):
                outcome = await asyncio.to_thread(policies.reload, forced)
                _report(services, outcome, forced)
                if outcome.ok:
                    await asyncio.to_thread(_follow, services)
                    _set_apart(services)
                retry = forced and outcome.result == "unstable"
        except Exception:  # the watch itself must survive anything a filesystem does
            get_logger().exception("policy watch failed")


def _follow(services: WebhookServices) -> None:
    """An inventory that watches what the policy set reads (the param objects of its VAP bindings)
    follows the set served."""
    follow = getattr(services.inventory, "follow", None)
    engine = services.policies.engine
    if follow is not None and engine is not None:
        follow(engine.policy_set.policies)


def _report(services: WebhookServices, outcome: ReloadOutcome, forced: bool, trigger: str = "") -> None:
    log = get_logger()
    telemetry = services.telemetry
    trigger = trigger or ("signal" if forced else "file change")
    # Every shrink is reported, whatever becomes of it: the names of the policies gone, at warning.
    shrink = {"removed": list(outcome.removed[:MAX_NAMES_SHOWN]), "removed_count": len(outcome.removed)}
    if outcome.result == "unstable":
        telemetry.add("reloads", 1, result="retried")
        log.warning(
            "policy files changed while being read; reading them again once they settle",
            extra={"digest": outcome.digest, "trigger": trigger},
        )
    elif outcome.result == "held":
        telemetry.add("shrinks", 1, result="held")
        log.warning(
            "policy set would lose policies; holding it until the same files are read again",
            extra={"digest": outcome.digest, "trigger": trigger, **shrink},
        )
    elif outcome.ok:
        telemetry.add("reloads", 1, result="success")
        if outcome.removed:
            telemetry.add("shrinks", 1, result="applied")
            log.warning(
                "policy set reloaded without some policies",
                extra={
                    "digest": outcome.digest,
                    "previous_digest": outcome.previous_digest,
                    "trigger": trigger,
                    **shrink,
                },
            )
        log.info(
            "policy set loaded",
            extra={
                "digest": outcome.digest,
                "previous_digest": outcome.previous_digest,
                "trigger": trigger,
                "seconds": round(outcome.seconds, 3),
            },
        )
        _warn_weak_trust(services)
        if services.background is not None:
            services.background.trigger()  # what is running is judged against the new set at once
    else:
        telemetry.add("reloads", 1, result="failure")
        telemetry.add("reload_failures", 1)
        if outcome.removed:
            telemetry.add("shrinks", 1, result="refused")
        log.error(
            "policy set reload failed; keeping the last good set",
            extra={
                "digest": outcome.digest,
                "trigger": trigger,
                "problems": list(outcome.problems),
                **(shrink if outcome.removed else {}),
            },
        )


def _warn_weak_trust(services: WebhookServices) -> None:
    """Trust settings weaker than the default (a signing certificate without the codeSigning EKU
    accepted), logged at warning with every load that serves them."""
    engine = services.policies.engine
    if engine is None:
        return
    for warning in trust_warnings(engine.policy_set.config):
        get_logger().warning("weak trust setting", extra={"warning": warning, "digest": engine.digest})


def signatures_expiring(engine: Engine | None, now: datetime) -> list[tuple[float, dict[str, str]]]:
    """The gauge of verified model signatures whose certificate chain expires within 30 days."""
    store = engine.attestations if engine is not None else None
    if store is None:
        return []
    return [(float(len(store.expiring(now, EXPIRY_NOTICE))), {"within": "30d"})]


def policies_unconfigured(engine: Engine | None) -> list[tuple[float, dict[str, str]]]:
    """The gauge of policies served without their GovernanceConfig facts (--allow-unconfigured): 1 each."""
    missing = engine.policy_set.unconfigured if engine is not None else ()
    return [(1.0, {"policy": m.policy, "needs": " | ".join(m.needs)}) for m in missing]


def attestation_status(engine: Engine | None, now: datetime) -> dict[str, Any] | None:
    """The attestation store for /readyz: how many bundles verify at ``now``, and each one that does not
    with the reason (the first ``MAX_NAMES_SHOWN``; the count is always given). None without a store."""
    store = engine.attestations if engine is not None else None
    if store is None or not (store.verdicts or store.problems):
        return None
    judged = store.at(now)
    refused = [{"bundle": name, "reason": v.reason} for name, v in judged if not v.verified]
    return {
        "bundles": len(judged),
        "verified": len(judged) - len(refused),
        "unverified": refused[:MAX_NAMES_SHOWN],
        "unverifiedCount": len(refused),
        "problems": list(store.problems[:MAX_NAMES_SHOWN]),
    }


def _register_gauges(services: WebhookServices) -> None:
    def policy_set() -> list[tuple[float, dict[str, str]]]:
        engine = services.policies.engine
        return [(1.0, {"digest": engine.digest})] if engine is not None else []

    def loaded() -> list[tuple[float, dict[str, str]]]:
        engine = services.policies.engine
        return [(float(len(engine.policy_set.policies)) if engine is not None else 0.0, {})]

    def synced() -> list[tuple[float, dict[str, str]]]:
        status = services.inventory.status()
        resources = status.get("resources")
        if isinstance(resources, dict):
            return [(1.0 if r.get("synced") else 0.0, {"resource": k}) for k, r in resources.items()]
        return [(1.0 if status.get("ready") else 0.0, {"resource": "all"})]

    def objects() -> list[tuple[float, dict[str, str]]]:
        inv = services.inventory.current()
        return [
            (float(len(inv.namespaces)), {"resource": "namespaces"}),
            (float(len(inv.objects)), {"resource": "objects"}),
        ]

    def audit_queue() -> list[tuple[float, dict[str, str]]]:
        # An audit recorder with group commit may expose its queue depth; the port does not require it.
        depth = getattr(services.recorder, "queue_depth", None)
        return [(float(depth), {})] if isinstance(depth, int) else []

    def audit_health(name: str) -> Callable[[], list[tuple[float, dict[str, str]]]]:
        def read() -> list[tuple[float, dict[str, str]]]:
            status = audit_status(services.recorder)
            return [(float(status[name]), {})] if status is not None else []

        return read

    services.telemetry.gauges.update(
        {
            "policyengine_audit_queue_depth": audit_queue,
            "policyengine_audit_failures": audit_health("failures"),
            "policyengine_audit_healthy": audit_health("healthy"),
            "policyengine_policy_set_info": policy_set,
            "policyengine_policies_loaded": loaded,
            "policyengine_policies_unconfigured": lambda: policies_unconfigured(services.policies.engine),
            "policyengine_inventory_synced": synced,
            "policyengine_inventory_objects": objects,
            "policyengine_model_signatures_expiring": lambda: signatures_expiring(
                services.policies.engine, datetime.now(UTC)
            ),
            **certificate_gauges(),
        }
    )
