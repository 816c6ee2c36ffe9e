"""The webhook's reservation ledger: the store --reservations names, its metrics, its /readyz report,
and a store out of service making GPU admissions error results (never unreserved allows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.inventory import from_documents
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.reservations import MemoryReservations, Reservation
from tests.helpers import run_cli, write
from webhook.prometheus import parse_samples
from webhook.reserving import MeteredStore, ledger_from
from webhook.settings import Settings
from webhook.telemetry import build_telemetry

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reservations", "redis://x"], "--reservations must be memory, kube or a postgresql:// DSN"),
        (["--reservations", "kube"], "--reservations kube needs --kube"),
        (["--reservation-ttl", "0"], "--reservation-ttl must be positive"),
        (["--reservations", "memory", "--workers", "2"], "--workers > 1 shares no memory"),
        (["--workers", "2"], "--workers > 1 needs a shared reservation store"),  # memory by default
    ],
)
def test_bad_reservation_flags_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["serve", "--insecure-http", *args], capsys, monkeypatch)
    assert code == 2
    assert message in err


def _counts(telemetry_text: str, name: str) -> dict[str, float]:
    return {next(iter(labels.values())): v for n, labels, v in parse_samples(telemetry_text) if n == name}


def test_the_metered_store_counts_results_and_the_stores_own_conflicts_and_retries() -> None:
    telemetry = build_telemetry({})
    store = MemoryReservations()
    metered = MeteredStore(store, telemetry, "memory")
    store.events("conflict", "ml")  # what a shared store reports through the hook
    store.events("retry", "ml")
    r = Reservation(key="k", pool="ml", gpus=8, expires=NOW + timedelta(minutes=2))
    assert metered.reserve(r, limit=8, observed=0, now=NOW)
    assert not metered.reserve(Reservation("k2", "ml", 8, r.expires), limit=8, observed=0, now=NOW)
    text = telemetry.prometheus_text()
    assert _counts(text, "policyengine_gpu_reservations_total") == {"made": 1.0, "refused": 1.0}
    assert _counts(text, "policyengine_gpu_reservation_store_events_total") == {"conflict": 1.0, "retry": 1.0}
    assert metered.status() == {"store": "memory", "healthy": True}


def test_a_store_out_of_service_is_reported_and_gpu_admissions_are_error_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    telemetry = build_telemetry({})
    # Nothing listens on port 1: the store cannot be reached (or, in a build without it, opened).
    settings = Settings(reservations="postgresql://u:s3cret@127.0.0.1:1/x")
    ledger = ledger_from(settings, telemetry)
    status = ledger.store.status()
    assert status["healthy"] is False and status["store"] == "postgresql://…@127.0.0.1:1/x"
    assert "s3cret" not in str(status)
    config = write(
        tmp_path_factory.mktemp("c") / "config.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: GovernanceConfig
        metadata: {name: c}
        spec: {gpu: {teams: {ml: {quota: 32}}}}
        """,
    )
    engine = Engine(
        load_policy_set(
            [str(bundled_policies_dir() / "gpu-quotas")], config_paths=[str(config)], include_bundled=False
        )
    )
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "t", "labels": {"policyengine.io/team": "ml"}},
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "t"},
           "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 8}}}]}}  # fmt: skip
    decision = engine.evaluate(
        request_from_manifest(pod), inventory=from_documents([ns]), now=NOW, ledger=ledger
    )
    assert not decision.allowed
    assert [r.code for r in decision.denials] == ["reservation_unavailable"]
    assert _counts(telemetry.prometheus_text(), "policyengine_gpu_reservation_store_events_total") == {
        "error": 1.0
    }
