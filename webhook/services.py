"""What the webhook app is built from (``WebhookServices``), and the health its audit recorder reports.

The caller (the CLI, a test) builds the services; ``webhook.app.create_app`` serves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policyengine.charging import Ledger
from policyengine.scale import ParentLookup
from webhook.admission import DEFAULT_TIMEOUT
from webhook.background import BackgroundScanner
from webhook.body import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY
from webhook.clientauth import Authenticator
from webhook.inflight import DEFAULT_MAX_IN_FLIGHT
from webhook.inventories import InventorySource, StaticInventory
from webhook.leader import LeaderElector
from webhook.policies import LivePolicies
from webhook.recorder import DecisionRecorder, NullRecorder
from webhook.telemetry import Telemetry, build_telemetry


@dataclass
class WebhookServices:
    """Everything the app needs, built by the caller (the CLI, a test)."""

    policies: LivePolicies
    inventory: InventorySource = field(default_factory=StaticInventory)
    recorder: DecisionRecorder = field(default_factory=NullRecorder)
    telemetry: Telemetry = field(default_factory=lambda: build_telemetry({}))
    max_body: int = DEFAULT_MAX_BODY
    timeout: float = DEFAULT_TIMEOUT  # seconds from a review's arrival to its answer
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds to receive a whole request body (within timeout)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # reviews being answered at once
    max_in_flight_bytes: int | None = None  # their bodies' bytes at once (default: twice max_body)
    reload_interval: float | None = 2.0  # seconds between file polls; None: reload on SIGHUP only
    handle_sighup: bool = False  # only the process's real server installs the signal handler
    # Only a process that serves nothing else sets apart its heap once a policy set is in place
    # (webhook.heap): a test or a host program keeps its own garbage collection as it is.
    freeze_heap: bool = False
    eval_threads: int | None = None  # evaluation pool size (default: the executor's own)
    inline_eval: bool = True  # small reviews evaluated on the event loop first (webhook.onloop)
    startup_wait: float = 30.0  # seconds to wait for the inventory's first sync before accepting requests
    parents: ParentLookup | None = None  # reads the workload a scale request scales (with --kube)
    ledger: Ledger | None = None  # GPU reservations (webhook.reserving); None: none are made
    background: BackgroundScanner | None = None  # serve --background-interval (webhook.background)
    leader: LeaderElector | None = None  # who publishes the background scan's reports (webhook.leader)
    auth: Authenticator | None = None  # who may post reviews (webhook.clientauth); None: anyone


def audit_status(recorder: object) -> dict[str, Any] | None:
    """Health of an audit recorder that reports it (the port does not require it)."""
    healthy = getattr(recorder, "healthy", None)
    if not isinstance(healthy, bool):
        return None
    status: dict[str, Any] = {
        "healthy": healthy,
        "failures": int(getattr(recorder, "failures", 0)),
        "failureMode": str(getattr(recorder, "failure", "deny")),
    }
    outage = getattr(recorder, "outage", None)
    seconds = outage() if callable(outage) else None
    if isinstance(seconds, float):
        status["outageSeconds"] = round(seconds, 1)
    return status
