"""Small reviews evaluated on the event loop: an expensive one is moved to the pool after its slice, is
answered per failurePolicy at its deadline there, and other requests are answered meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

import webhook.onloop
from policyengine.cel import DEFAULT_BUDGET, Budget
from policyengine.engine import Engine
from tests.unit.webhook.builders import POLICIES, engine_for, pod, review, write_policies
from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.prometheus import parse_samples
from webhook.recorder import MemoryRecorder
from webhook.telemetry import build_telemetry

# Each of these runs a comprehension of 160,000 steps over the ConfigMap below, which its CEL cost budget
# cuts (an error result, failurePolicy Fail): about a million units of work per policy, on any machine.
PRICEY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: pricey-{i}
spec:
  match:
    kinds: [{{apiGroups: [""], kinds: [ConfigMap]}}]
  validations:
    - expression: "object.data.all(a, object.data.all(b, a != b || a == b))"
      message: "never shown"
"""
# Three nested loops over the same ConfigMap: 64 million steps, which no machine runs in the 1 s time
# budget these get with no cost limit.
HEAVY = PRICEY.replace(
    "object.data.all(a, object.data.all(b, a != b || a == b))",
    "object.data.all(a, object.data.all(b, object.data.all(c, a != b || b != c || a == c)))",
)
WIDE = 33  # expressions in one policy: more than webhook.onloop.MAX_EXPRESSIONS
HANG_GUARD = 60.0  # seconds: fails the test instead of hanging it; never the thing measured


def _services(
    tmp_path: Path,
    pricey: int,
    recorder: MemoryRecorder,
    spans: InMemorySpanExporter,
    budget: Budget = DEFAULT_BUDGET,
    template: str = PRICEY,
) -> Any:
    text = POLICIES + "---" + "---".join(template.format(i=i) for i in range(pricey))
    directory = tmp_path / "policies"
    write_policies(directory, text)

    def engine() -> Engine:
        return Engine(engine_for(directory).policy_set, budget=budget)

    policies = LivePolicies(engine, [str(directory)])
    policies.serve(engine())
    return WebhookServices(
        policies=policies,
        recorder=recorder,
        telemetry=build_telemetry({}, span_exporter=spans),
        reload_interval=None,
    )


def _configmap() -> dict[str, Any]:
    data = {f"key-{i}": "v" for i in range(400)}  # 4 KB: well under the on-loop size
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "apps"},
        "data": data,
    }
    return review(obj, kind="ConfigMap", resource="configmaps")


def _moved(client: TestClient) -> float:
    samples = parse_samples(client.get("/metrics").text)
    return sum(v for name, _, v in samples if name.startswith("policyengine_evaluations_moved_to_pool"))


def _slice_ends_after_one_policy() -> Iterator[float]:
    yield 0.0  # the slice is made
    yield 0.0  # the first policy starts within it
    while True:
        yield 100.0  # every later one after it


def test_an_evaluation_past_its_slice_is_moved_to_the_pool_and_decided_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, spans = MemoryRecorder(), InMemorySpanExporter()
    services = _services(tmp_path, 3, recorder, spans)
    services.timeout = HANG_GUARD
    ticks = _slice_ends_after_one_policy()
    monkeypatch.setattr(webhook.onloop, "clock", lambda: next(ticks))
    with TestClient(create_app(services)) as client:
        answer = client.post("/validate", json=_configmap())
        assert answer.status_code == 200, answer.text
        assert _moved(client) == 1
    response = answer.json()["response"]
    assert response["allowed"] is False  # the pricey policies fail closed
    # One decision, made whole in the pool: nothing of the attempt on the loop is kept or recorded.
    (decision,) = recorder.decisions
    by_policy = {r.policy: r for r in decision.results}
    assert set(by_policy) == {"lenient-check", "pricey-0", "pricey-1", "pricey-2"}
    assert {by_policy[f"pricey-{i}"].code for i in range(3)} == {"budget_exceeded"}
    assert all("cost budget" in by_policy[f"pricey-{i}"].message for i in range(3))
    (admission,) = [s for s in spans.get_finished_spans() if s.name == "admission"]
    (event,) = [e for e in admission.events if e.name == "evaluation moved to the pool"]
    assert event.attributes is not None and event.attributes["policies_evaluated"] == 1


def test_a_small_review_is_decided_on_the_loop(tmp_path: Path) -> None:
    recorder, spans = MemoryRecorder(), InMemorySpanExporter()
    services = _services(tmp_path, 0, recorder, spans)
    app = create_app(services)
    with TestClient(app) as client:
        answer = client.post("/validate", json=review(pod(image="nginx:latest")))
        assert answer.status_code == 200 and answer.json()["response"]["allowed"] is False
        assert _moved(client) == 0
        assert not app.state.admitter.executor._threads  # the pool never started a thread


def test_a_policy_of_more_expressions_than_the_loop_takes_is_evaluated_in_the_pool(tmp_path: Path) -> None:
    assert webhook.onloop.MAX_EXPRESSIONS < WIDE
    validations = "".join(f'    - expression: "true"\n      message: "m{i}"\n' for i in range(WIDE))
    wide = (
        "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {name: wide}\nspec:\n"
        '  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}\n  validations:\n' + validations
    )
    directory = tmp_path / "policies"
    write_policies(directory, POLICIES + "---\n" + wide)
    policies = LivePolicies(lambda: engine_for(directory), [str(directory)])
    policies.serve(engine_for(directory))
    app = create_app(WebhookServices(policies=policies, reload_interval=None))
    with TestClient(app) as client:
        answer = client.post("/validate", json=review(pod()))
        assert answer.status_code == 200 and answer.json()["response"]["allowed"] is True
        assert _moved(client) == 0  # not begun on the loop at all
        assert app.state.admitter.executor._threads  # decided in the pool


def test_an_expensive_review_is_cut_at_its_deadline_while_others_are_answered(tmp_path: Path) -> None:
    """3 policies with no cost limit, each cut by its 1 s time budget: 3 s of work on any machine, against
    a 1 s webhook budget. On the loop, the first expression runs out of its share of the slice, which
    abandons the attempt (it is not an error result of the loop's making)."""
    recorder, spans = MemoryRecorder(), InMemorySpanExporter()
    services = _services(tmp_path, 3, recorder, spans, Budget(max_cost=2**62, max_seconds=1.0), HEAVY)
    services.timeout = 1.0
    answers: dict[str, Any] = {}

    def send(name: str, client: TestClient, body: dict[str, Any]) -> None:
        answers[name] = client.post("/validate", json=body)

    with TestClient(create_app(services)) as client:
        threads = [threading.Thread(target=send, args=("expensive", client, _configmap()))]
        threads += [
            threading.Thread(target=send, args=(f"cheap-{i}", client, review(pod(image=f"nginx:{tag}"))))
            for i, tag in enumerate(("1.27", "latest", "1.27", "latest"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_GUARD)
            assert not thread.is_alive(), "a request was not answered"
        moved = _moved(client)
    expensive = answers["expensive"]
    assert expensive.status_code == 200, expensive.text
    response = expensive.json()["response"]
    assert response["allowed"] is False
    assert "did not finish within the webhook's 1s budget" in response["status"]["message"]
    over = [d for d in recorder.decisions if d.request.kind.kind == "ConfigMap"]
    assert len(over) == 1 and {r.code for r in over[0].results} == {"budget_exceeded"}
    assert len(over[0].results) == 4  # every matching policy, under failurePolicy
    for i, tag in enumerate(("1.27", "latest", "1.27", "latest")):
        cheap = answers[f"cheap-{i}"]
        assert cheap.status_code == 200, cheap.text
        assert cheap.json()["response"]["allowed"] is (tag != "latest")
    assert moved == 1  # begun on the loop, cut at its slice
