"""The background scan (``serve --background-interval``): every object the inventory holds (and with
--kube, the AI workloads read from the API server: ``webhook.bgcluster``) re-evaluated against the served
policy set, on an interval and after every reload of the policies or GovernanceConfig.

Each object is judged by the core scan (``policyengine.scan``, as ``policyengine scan`` judges it): the
CREATE request the API server would send for it, no ``oldObject``, an empty ``userInfo``, and no GPU
reservation made; a workload's own pods are left out of the quota pool it is judged against
(``policyengine/ownusage.py``), so it is not counted twice. Policies that only make sense at admission
opt out (``policyengine.io/background: "false"``, or Kyverno's background switch: ``Policy.background``).
The scan runs in a thread of its own with an Engine of its own (its own CEL budget, ``BACKGROUND_BUDGET``) and a CPU rate
limit (``webhook.cpulimit``), and shares no lock with admission but the inventory's snapshot read. A pass's
decisions, grouped by namespace, go to a ``ReportSink`` while this replica leads (``webhook.leader``);
every replica keeps the metrics: ``policyengine_violations`` (``webhook.violations``), and the last
pass's ``policyengine_background_scan_seconds`` and ``policyengine_background_objects``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from policyengine.cel import Budget
from policyengine.engine import Engine
from policyengine.gate import Checked
from policyengine.model import Decision, Inventory, Policy
from policyengine.scan import background_engine, documents_of, scan
from webhook.cpulimit import DEFAULT_SHARE, CpuLimiter
from webhook.inventories import InventorySource
from webhook.logs import get_logger
from webhook.policies import LivePolicies
from webhook.telemetry import Telemetry
from webhook.violations import DEFAULT_MAX_NAMESPACES, ViolationGauge

# A scan has no deadline to meet, but one object's runaway rule must not hold the pass: the same cost
# bound as admission, half its time.
BACKGROUND_BUDGET = Budget(max_cost=1_000_000, max_seconds=0.5)
POLL = 1.0  # seconds between looks at the served set's digest (a reload starts a pass within this)
# What a pass judges: the objects, from the inventory (and with --kube, the API server); raises when they
# cannot all be read, and the pass is then not published.
ObjectSource = Callable[[Inventory, Sequence[Policy]], Sequence[Any]]


def inventory_objects(inventory: Inventory, policies: Sequence[Policy]) -> list[Any]:
    """What a pass judges without --kube: the namespaces and objects the inventory holds."""
    return [*inventory.namespaces.values(), *inventory.objects]


class ReportSink(Protocol):
    """Where a pass's results go (the OpenReports writer): decisions on namespaced objects by namespace,
    and those on cluster-scoped objects. Each call replaces the previous pass's reports whole."""

    def publish(
        self, results_by_namespace: Mapping[str, Sequence[Decision]], cluster_results: Sequence[Decision]
    ) -> None: ...


class LoggingSink:
    """A sink that logs a pass's summary: the default until a report writer is given."""

    def publish(
        self, results_by_namespace: Mapping[str, Sequence[Decision]], cluster_results: Sequence[Decision]
    ) -> None:
        decisions = [d for ds in results_by_namespace.values() for d in ds] + list(cluster_results)
        failed = sum(1 for d in decisions if any(r.outcome.value == "fail" for r in d.results))
        get_logger().info(
            "background scan results",
            extra={"namespaces": len(results_by_namespace), "objects": len(decisions), "failing": failed},
        )


@dataclass
class ScanPass:
    """One pass: the decisions with results, by namespace ("" holds none: cluster-scoped ones are apart)."""

    digest: str
    by_namespace: dict[str, list[Decision]] = field(default_factory=dict)
    cluster: list[Decision] = field(default_factory=list)
    objects: int = 0  # objects evaluated (with results or not)
    seconds: float = 0.0


class _Stopped(Exception):
    """The scanner was stopped mid-pass."""


def scan_pass(
    engine: Engine,
    objects: Sequence[Any],
    inventory: Inventory,
    *,
    now: datetime,
    limiter: CpuLimiter | None = None,
    on_object: Callable[[int], None] | None = None,
    cancelled: threading.Event | None = None,
) -> ScanPass | None:
    """Judge ``objects`` against ``inventory`` through the core scan (``policyengine.scan``: each object
    as its CREATE request, as ``scan`` and ``check`` judge it); ``on_object(n)`` is called after the n-th,
    and the limiter charged there. None when ``cancelled`` was set before the pass ended."""
    started = time.perf_counter()
    out = ScanPass(engine.digest)
    mark = limiter.mark() if limiter is not None else 0.0

    def after_each(checked: Checked) -> None:
        nonlocal mark
        if limiter is not None:
            mark = limiter.charge_since(mark)
        out.objects += 1
        decision = checked.decision
        if decision.results:
            ns = decision.request.namespace
            (out.by_namespace.setdefault(ns, []) if ns else out.cluster).append(decision)
        if on_object is not None:
            on_object(out.objects)
        if cancelled is not None and cancelled.is_set():
            raise _Stopped

    if cancelled is not None and cancelled.is_set():
        return None
    try:
        scan(engine, documents_of(objects), inventory=inventory, now=now, after_each=after_each)
    except _Stopped:
        return None
    out.seconds = time.perf_counter() - started
    return out


class BackgroundScanner:
    """The scanning thread. ``leads()`` says whether this replica publishes (default: always);
    ``on_object`` is called after each object (tests hold a pass mid-way with it)."""

    def __init__(
        self,
        policies: LivePolicies,
        inventory: InventorySource,
        telemetry: Telemetry,
        *,
        interval: float,
        cpu_share: float = DEFAULT_SHARE,
        budget: Budget = BACKGROUND_BUDGET,
        sink: ReportSink | None = None,
        leads: Callable[[], bool] = lambda: True,
        max_namespaces: int = DEFAULT_MAX_NAMESPACES,
        on_object: Callable[[int], None] | None = None,
        objects: ObjectSource = inventory_objects,
    ) -> None:
        if interval <= 0:
            raise ValueError("the background interval must be positive")
        self.policies = policies
        self.inventory = inventory
        self.telemetry = telemetry
        self.interval = interval
        self.budget = budget
        self.sink: ReportSink = sink or LoggingSink()
        self.leads = leads
        self.on_object = on_object
        self.objects = objects
        self.violations = ViolationGauge(max_namespaces)
        self.passes = 0
        self.last: ScanPass | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self.limiter = CpuLimiter(cpu_share, sleep=self._stopping.wait)
        self._engine: tuple[str, Engine] | None = None
        self._attempted = ""  # the digest of the set last scanned, whether the pass succeeded or not
        self._thread: threading.Thread | None = None
        self.register_gauges()

    def register_gauges(self) -> None:
        def last(attr: str) -> Callable[[], list[tuple[float, dict[str, str]]]]:
            def read() -> list[tuple[float, dict[str, str]]]:
                done = self.last
                return [(float(getattr(done, attr)), {})] if done is not None else []

            return read

        self.telemetry.gauges.update(
            {
                "policyengine_violations": self.violations.samples,
                "policyengine_background_scan_seconds": last("seconds"),
                "policyengine_background_objects": last("objects"),
            }
        )

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="policyengine-background", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def trigger(self) -> None:
        """Scan again now (a reload was applied)."""
        self._wake.set()

    def _run(self) -> None:
        due = time.monotonic()  # the first pass at once: the server has loaded and synced
        while not self._stopping.is_set():
            engine = self.policies.engine
            reloaded = engine is not None and engine.digest != self._attempted
            if (
                engine is not None
                and self.inventory.status().get("ready")
                and (reloaded or self._wake.is_set() or time.monotonic() >= due)
            ):
                self._wake.clear()
                self.run_pass(engine)
                due = time.monotonic() + self.interval
            self._wake.wait(min(POLL, max(0.0, due - time.monotonic())))

    def run_pass(self, engine: Engine) -> ScanPass | None:
        """One pass with ``engine``'s set; its results published while leading. A pass that fails (the
        objects cannot all be read, an evaluation crashed) is logged, publishes nothing and leaves the
        last one's metrics in place: the reports keep the last complete pass."""
        log = get_logger()
        self._attempted = engine.digest
        background = self._background(engine)
        try:
            inventory = self.inventory.current()
            with self.limiter.measured():  # reading the cluster (JSON decoding) is the scan's CPU too
                objects = self.objects(inventory, background.policy_set.policies)
            done = scan_pass(
                background,
                objects,
                inventory,
                now=datetime.now(UTC),
                limiter=self.limiter,
                on_object=self.on_object,
                cancelled=self._stopping,
            )
        except Exception as err:
            log.exception("background scan failed; the last reports stay", extra={"error": str(err)})
            return None
        if done is None:  # stopped mid-pass: a partial pass is no report
            return None
        done.digest = engine.digest
        self.violations.update(done.by_namespace, done.cluster)
        self.last, self.passes = done, self.passes + 1
        log.info(
            "background scan",
            extra={"digest": done.digest, "objects": done.objects, "seconds": round(done.seconds, 3)},
        )
        if self.leads():
            try:
                self.sink.publish(done.by_namespace, done.cluster)
            except Exception:  # the next pass publishes again
                log.exception("background scan results not published")
        return done

    def _background(self, engine: Engine) -> Engine:
        """The served set without the policies that opted out, with the scan's own budget (built once
        per policy set)."""
        cached = self._engine
        if cached is None or cached[0] != engine.digest:
            cached = self._engine = (engine.digest, background_engine(engine.policy_set, budget=self.budget))
        return cached[1]
