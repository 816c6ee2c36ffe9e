"""A policy set is never switched off by its files: an emptied, truncated or half-written set is refused,
held or reported, never silently served in place of the last good one."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from policyengine.engine import Engine
from tests.unit.webhook.builders import POLICIES, engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.logs import LOGGER
from webhook.policies import LivePolicies, load_settled
from webhook.prometheus import parse_samples
from webhook.telemetry import build_telemetry

ALL = ["lenient-check", "no-latest-tag", "team-label"]
FIRST_DOCUMENT = POLICIES.split("\n---\n")[0] + "\n"  # no-latest-tag only: a cut at a document boundary


def _live(policy_dir: Path, *, allow_empty: bool = False) -> LivePolicies:
    policies = LivePolicies(lambda: engine_for(policy_dir), [str(policy_dir)], allow_empty=allow_empty)
    policies.serve(engine_for(policy_dir))
    return policies


def _names(policies: LivePolicies) -> list[str]:
    assert policies.engine is not None
    return sorted(p.name for p in policies.engine.policy_set.policies)


def _rewrite(path: Path, text: str) -> None:
    # Filesystems with coarse mtimes: make sure every change is visible to the fingerprint.
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_a_file_emptied_to_zero_bytes_is_refused_and_the_last_set_kept(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    digest = policies.engine.digest if policies.engine else ""
    _rewrite(policy_dir / "policies.yaml", "")
    outcome = policies.reload()
    assert not outcome.ok and outcome.result == "failed"
    assert outcome.removed == tuple(ALL)
    assert policies.engine is not None and policies.engine.digest == digest and _names(policies) == ALL
    status = policies.status()
    assert status["ready"] is True and status["policies"] == 3
    (problem,) = status["lastReloadError"]["problems"]
    assert "no policies" in problem and "--allow-empty-policies" in problem
    assert status["lastShrink"]["result"] == "refused" and status["lastShrink"]["removed"] == ALL


def test_a_directory_left_without_policy_files_is_refused(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    (policy_dir / "policies.yaml").unlink()
    (policy_dir / "README.txt").write_text("not a policy file\n")
    outcome = policies.reload()
    assert not outcome.ok and _names(policies) == ALL
    assert "no policies" in policies.status()["lastReloadError"]["problems"][0]
    # Not reloaded in a loop: the refused files are remembered until they change.
    assert not policies.changed()


def test_an_empty_set_is_served_when_allowed_and_still_reported(policy_dir: Path) -> None:
    policies = _live(policy_dir, allow_empty=True)
    _rewrite(policy_dir / "policies.yaml", "")
    assert policies.reload().result == "held"  # a shrink: held until the same content is read again
    outcome = policies.reload()
    assert outcome.ok and outcome.removed == tuple(ALL) and _names(policies) == []
    assert policies.status()["lastShrink"]["result"] == "applied"


def test_a_file_cut_at_a_document_boundary_is_held_then_applied_when_stable(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    digest = policies.engine.digest if policies.engine else ""
    _rewrite(policy_dir / "policies.yaml", FIRST_DOCUMENT)
    held = policies.reload()
    assert not held.ok and held.result == "held" and held.removed == ("lenient-check", "team-label")
    assert policies.engine is not None and policies.engine.digest == digest  # still the whole set
    status = policies.status()
    assert status["pendingShrink"]["removed"] == ["lenient-check", "team-label"]
    assert "lastReloadError" not in status
    assert policies.changed()  # the held shrink is read again at the next poll
    applied = policies.reload()
    assert applied.ok and applied.result == "loaded" and applied.removed == held.removed
    assert _names(policies) == ["no-latest-tag"]
    status = policies.status()
    assert "pendingShrink" not in status
    assert status["lastShrink"]["result"] == "applied"
    assert status["lastShrink"]["removed"] == ["lenient-check", "team-label"]


def test_a_held_shrink_that_changes_again_is_not_applied(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    path = policy_dir / "policies.yaml"
    _rewrite(path, FIRST_DOCUMENT)
    assert policies.reload().result == "held"
    # The writer goes on: a different (still smaller) set is a new shrink, held again.
    _rewrite(path, POLICIES.split("\n---\n")[0] + "\n---\n" + POLICIES.split("\n---\n")[1] + "\n")
    again = policies.reload()
    assert again.result == "held" and again.removed == ("lenient-check",)
    assert _names(policies) == ALL
    # The whole file is back: nothing is lost, nothing pending.
    _rewrite(path, POLICIES)
    assert policies.reload().ok
    assert _names(policies) == ALL and "pendingShrink" not in policies.status()


def test_a_held_shrink_is_dropped_when_the_files_return_to_the_served_set(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    path = policy_dir / "policies.yaml"
    original, served = path.read_bytes(), path.stat()
    _rewrite(path, FIRST_DOCUMENT)
    assert policies.reload().result == "held"
    path.write_bytes(original)  # the writer puts the served file back, times included
    os.utime(path, ns=(served.st_atime_ns, served.st_mtime_ns))
    assert not policies.changed()
    assert "pendingShrink" not in policies.status() and _names(policies) == ALL


def test_a_forced_reload_applies_a_shrink_at_once_and_reports_it(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    _rewrite(policy_dir / "policies.yaml", FIRST_DOCUMENT)
    outcome = policies.reload(confirmed=True)
    assert outcome.ok and outcome.removed == ("lenient-check", "team-label")
    assert _names(policies) == ["no-latest-tag"]
    assert policies.status()["lastShrink"]["removed"] == ["lenient-check", "team-label"]


def test_a_forced_reload_still_refuses_an_empty_set(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    _rewrite(policy_dir / "policies.yaml", "")
    assert not policies.reload(confirmed=True).ok and _names(policies) == ALL


def test_a_write_in_progress_is_not_a_change_until_its_content_is_stable(policy_dir: Path) -> None:
    policies = _live(policy_dir)
    path = policy_dir / "policies.yaml"
    text = POLICIES.lstrip("\n")
    cut = text.index("---") + 60  # mid-document: the writer has not finished
    _rewrite(path, text[:cut])
    assert not policies.changed()  # first sight of a new fingerprint: wait for it to settle
    _rewrite(path, text[: cut + 80])
    assert not policies.changed()  # still growing
    _rewrite(path, text + "\n# done\n")
    assert not policies.changed()
    assert policies.changed()  # the same fingerprint on two consecutive polls: read it
    outcome = policies.reload()
    assert outcome.ok and _names(policies) == ALL


def test_files_that_change_while_being_read_are_read_again_later(policy_dir: Path) -> None:
    path = policy_dir / "policies.yaml"
    calls: list[int] = []

    def load() -> Engine:
        engine = engine_for(policy_dir)
        if not calls:  # a writer finishes its write while the set is being read
            _rewrite(path, POLICIES + "\n# appended while reading\n")
        calls.append(1)
        return engine

    policies = LivePolicies(load, [str(policy_dir)])
    policies.serve(engine_for(policy_dir))
    digest = policies.engine.digest if policies.engine else ""
    _rewrite(path, FIRST_DOCUMENT)
    outcome = policies.reload()
    assert not outcome.ok and outcome.result == "unstable"
    assert policies.engine is not None and policies.engine.digest == digest
    assert "lastReloadError" not in policies.status() and "pendingShrink" not in policies.status()
    # Read again once the fingerprint seen after the read is seen again.
    assert policies.changed()
    assert policies.reload().ok and _names(policies) == ALL and len(calls) == 2


def test_the_start_load_waits_for_files_that_hold_still(policy_dir: Path) -> None:
    path = policy_dir / "policies.yaml"
    writes = [POLICIES + "\n# 1\n", POLICIES + "\n# 2\n"]

    def load() -> Engine:
        engine = engine_for(policy_dir)
        if writes:  # a writer still at work during the first two reads
            _rewrite(path, writes.pop(0))
        return engine

    engine = load_settled(load, [str(policy_dir)], pause=0)
    assert engine is not None and not writes and len(engine.policy_set.policies) == 3

    def never_still() -> Engine:
        _rewrite(path, POLICIES)
        return engine_for(policy_dir)

    assert load_settled(never_still, [str(policy_dir)], attempts=3, pause=0) is None


# --- through the app: metrics, logs, /readyz, and decisions -------------------------------------------------


def _wait(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds  # a hang guard only
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _metric(client: TestClient, name: str, **labels: str) -> float:
    samples = parse_samples(client.get("/metrics").text)
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


@pytest.fixture
def guarded_client(policy_dir: Path) -> TestClient:
    services = WebhookServices(
        policies=_live(policy_dir), telemetry=build_telemetry({}), reload_interval=0.05
    )
    return TestClient(create_app(services))


def test_an_emptied_file_keeps_denying_and_says_why(
    guarded_client: TestClient, policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = review(pod(image="x:latest"))
    with caplog.at_level(logging.INFO, logger=LOGGER), guarded_client as client:
        assert client.post("/validate", json=bad).json()["response"]["allowed"] is False
        _rewrite(policy_dir / "policies.yaml", "")
        _wait(lambda: "lastReloadError" in client.get("/readyz").json()["policies"])
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["policies"]["policies"] == 3
        assert ready.json()["policies"]["lastShrink"]["removed"] == ALL
        assert client.post("/validate", json=bad).json()["response"]["allowed"] is False
        assert _metric(client, "policyengine_reload_failures_total") == 1
        assert _metric(client, "policyengine_policy_set_shrinks_total", result="refused") == 1
    refused = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert refused and refused[-1].__dict__["removed"] == ALL


def test_a_truncated_file_is_reported_as_a_shrink_naming_the_policies_gone(
    guarded_client: TestClient, policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER), guarded_client as client:
        _rewrite(policy_dir / "policies.yaml", FIRST_DOCUMENT)
        _wait(lambda: client.get("/readyz").json()["policies"]["policies"] == 1)
        detail = client.get("/readyz").json()["policies"]
        assert detail["lastShrink"]["removed"] == ["lenient-check", "team-label"]
        assert _metric(client, "policyengine_policy_set_shrinks_total", result="held") == 1
        assert _metric(client, "policyengine_policy_set_shrinks_total", result="applied") == 1
        assert (
            client.post("/validate", json=review(pod(image="x:latest"))).json()["response"]["allowed"]
            is False
        )
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert [r.__dict__["removed"] for r in warnings] == [["lenient-check", "team-label"]] * 2
