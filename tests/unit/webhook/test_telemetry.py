"""OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set: spans and metrics reach a collector over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.unit.webhook.builders import engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.prometheus import render
from webhook.telemetry import build_telemetry


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []

    async def receive(request: Request) -> Response:
        await request.body()
        received.append(request.url.path)
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/{signal}", receive, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", received
    server.should_exit = True
    thread.join(timeout=5)


def test_otlp_export_sends_spans_and_metrics(collector: tuple[str, list[str]], policy_dir: Path) -> None:
    endpoint, received = collector
    telemetry = build_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    policies = LivePolicies(lambda: engine_for(policy_dir))
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, telemetry=telemetry, reload_interval=None)
    with TestClient(create_app(services)) as client:
        assert client.post("/validate", json=review(pod())).status_code == 200
    telemetry.shutdown()  # flushes the batch span processor and the periodic metric reader
    assert "/v1/traces" in received and "/v1/metrics" in received


def test_no_endpoint_no_exporter_and_empty_data_renders_empty() -> None:
    telemetry = build_telemetry({})
    assert "policyengine_" not in telemetry.prometheus_text()  # nothing recorded yet
    assert render(None) == ""
    telemetry.shutdown()
