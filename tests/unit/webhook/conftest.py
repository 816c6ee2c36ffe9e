"""Fixtures for the webhook tests: an app over a small policy set, with a recorder and span exporter."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
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


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str]]]:
    """An OTLP/HTTP collector on 127.0.0.1: yields its endpoint and the paths it received."""
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
