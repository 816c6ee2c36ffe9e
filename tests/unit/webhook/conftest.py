"""Fixtures for the webhook tests: an app over a small policy set, with a recorder and span exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from tests.unit.webhook.builders import engine_for, write_policies
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.recorder import MemoryRecorder
from webhook.telemetry import build_telemetry


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    write_policies(directory)
    return directory


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder()


@pytest.fixture
def services(policy_dir: Path, recorder: MemoryRecorder, spans: InMemorySpanExporter) -> WebhookServices:
    policies = LivePolicies(lambda: engine_for(policy_dir), [str(policy_dir)])
    policies.serve(engine_for(policy_dir))
    return WebhookServices(
        policies=policies,
        recorder=recorder,
        telemetry=build_telemetry({}, span_exporter=spans),
        reload_interval=0.05,
    )


@pytest.fixture
def client(services: WebhookServices) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c
