"""Limits of one review: the in-flight caps (requests, body bytes held until every thread working on a
request is done), the whole-request budget (parse and record included), and overload reported once per
interval. Each test asserts on the bound itself; the timers only keep a broken build from hanging."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from starlette.testclient import TestClient

import webhook.app
from tests.unit.webhook.builders import pod, review
from webhook.app import INLINE_DECODE, WebhookServices, create_app
from webhook.inflight import InFlight, declared_size
from webhook.logs import LOGGER
from webhook.overload import OverloadLog

HANG_GUARD = 30.0


@pytest.fixture
def gate_opens_late() -> Iterator[threading.Event]:
    """An event a blocked thread waits on; set by the test, or after the hang guard at the latest."""
    event = threading.Event()
    timer = threading.Timer(HANG_GUARD, event.set)
    timer.start()
    yield event
    event.set()
    timer.cancel()


def test_in_flight_counts_requests_and_bytes_and_a_ticket_waits_for_its_jobs() -> None:
    gate = InFlight(max_requests=2, max_bytes=100)
    first = gate.enter(60)
    assert first is not None
    assert gate.enter(41) is None, "over the byte cap"
    second = gate.enter(40)
    assert second is not None
    assert gate.enter(0) is None, "over the request cap"
    job: Future[None] = Future()
    first.hold(job)
    first.release()  # the handler answered; its job is still running
    assert (gate.requests, gate.bytes) == (2, 100)
    job.set_result(None)
    assert (gate.requests, gate.bytes) == (1, 40)
    second.release()
    assert (gate.requests, gate.bytes) == (0, 0)


@pytest.mark.parametrize(
    ("header", "size"), [("120", 120), (None, 1000), ("nope", 1000), ("-5", 0), ("99999", 1000)]
)
def test_a_request_holds_its_declared_size_or_the_largest_body(header: str | None, size: int) -> None:
    assert declared_size(header, 1000) == size


def test_an_overload_is_logged_once_per_interval_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    overload = OverloadLog("cap reached", interval=10.0, clock=lambda: now[0], fields={"cap": 3})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(1000):
            overload.hit()
        now[0] = 10.0
        overload.hit()
    lines = [r for r in caplog.records if r.getMessage() == "cap reached"]
    assert [(r.occurrences, r.cap) for r in lines] == [(1, 3), (1000, 3)]  # type: ignore[attr-defined]
    assert overload.total == 1001


def test_reviews_over_the_byte_cap_are_503_in_json_without_reading_the_body(
    services: WebhookServices,
) -> None:
    services.max_body = 1000
    services.max_in_flight_bytes = 1000
    app = create_app(services)
    with TestClient(app) as client:
        held = app.state.in_flight.enter(900)  # as if a large review were being answered
        response = client.post("/validate", json=review(pod()))
        held.release()
        after = client.post("/validate", json=review(pod()))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "overloaded"
    assert after.status_code == 200


class _StuckRecorder:
    def __init__(self, opens: threading.Event) -> None:
        self.opens = opens

    def record(self, decision: Any, *, source: str) -> int | None:
        self.opens.wait()
        return 7


def test_a_decision_not_recorded_within_the_budget_is_an_error_not_a_late_answer(
    services: WebhookServices, gate_opens_late: threading.Event
) -> None:
    services.recorder = _StuckRecorder(gate_opens_late)
    services.timeout = 0.5
    app = create_app(services)
    with TestClient(app) as client:
        response = client.post("/validate", json=review(pod()))
        # The recording goes on in its thread: its request's share stays counted until it ends.
        assert app.state.in_flight.requests == 1
        gate_opens_late.set()
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert (
        error["code"] == "record_failed"
        and "not recorded within the webhook's 0.5s budget" in error["message"]
    )


def test_a_review_not_parsed_within_the_budget_is_503_and_its_bytes_stay_held(
    services: WebhookServices, gate_opens_late: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = webhook.app.parse_review

    def slow_parse(data: Any) -> Any:
        gate_opens_late.wait()
        return real(data)

    monkeypatch.setattr(webhook.app, "parse_review", slow_parse)
    services.timeout = 0.5
    big = pod()
    big["metadata"]["annotations"] = {"pad": "x" * (INLINE_DECODE + 1)}  # parsed in a thread
    body = review(big)
    app = create_app(services)
    with TestClient(app) as client:
        response = client.post("/validate", json=body)
        held = app.state.in_flight.bytes
        gate_opens_late.set()

        async def drained() -> None:
            while app.state.in_flight.requests:
                await asyncio.sleep(0.01)

        asyncio.run(asyncio.wait_for(drained(), HANG_GUARD))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert held > INLINE_DECODE, "the parse still running held the body's share after the answer"
