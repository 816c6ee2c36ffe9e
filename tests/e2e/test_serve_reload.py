"""``policyengine serve`` over TLS: an emptied or truncated policy file never switches governance off."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import Server, _cli, _start, _stop
from tests.unit.webhook.builders import POLICIES, pod, review
from webhook.prometheus import parse_samples

pytestmark = pytest.mark.e2e

HANG_GUARD = 60.0  # seconds: fails a stuck test with the server's log, never a timing assertion


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    _cli("certs", "--out", str(out), "--dns", "localhost", "--dns", "127.0.0.1")
    return out


@pytest.fixture
def running(tmp_path: Path, certs: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    server = _start(tmp_path, certs, *getattr(request, "param", ()))
    yield server
    _stop(server)


def _until(server: Server, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.05)


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    samples = parse_samples(client.get("/metrics").text)
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def _allowed(client: httpx.Client, image: str) -> bool:
    response = client.post("/validate", json=review(pod(image=image)))
    assert response.status_code == 200, response.text
    return bool(response.json()["response"]["allowed"])


def test_a_truncated_then_emptied_file_keeps_denying_and_readyz_says_why(running: Server) -> None:
    path = running.policies / "policies.yaml"
    with running.client() as client:
        assert _allowed(client, "x:latest") is False
        # Cut at a document boundary: it parses, and loses two policies. Reported, applied once stable.
        path.write_text(POLICIES.split("\n---\n")[0] + "\n", encoding="utf-8")
        _until(running, lambda: client.get("/readyz").json()["policies"]["policies"] == 1)
        shrink = client.get("/readyz").json()["policies"]["lastShrink"]
        assert shrink["result"] == "applied" and shrink["removed"] == ["lenient-check", "team-label"]
        assert _metric(client, "policyengine_policy_set_shrinks_total", result="applied") == 1
        assert _allowed(client, "x:latest") is False
        # Emptied to 0 bytes: refused, the last good set keeps deciding.
        path.write_bytes(b"")
        _until(running, lambda: "lastReloadError" in client.get("/readyz").json()["policies"])
        ready = client.get("/readyz")
        assert ready.status_code == 200
        detail = ready.json()["policies"]
        assert detail["policies"] == 1 and "no policies" in detail["lastReloadError"]["problems"][0]
        assert detail["lastShrink"]["result"] == "refused" and detail["lastShrink"]["removed"] == [
            "no-latest-tag"
        ]
        assert _allowed(client, "x:latest") is False
        # The directory left with no policy file at all: refused too.
        path.unlink()
        _until(running, lambda: _metric(client, "policyengine_reload_failures_total") == 2)
        assert _allowed(client, "x:latest") is False
        assert _metric(client, "policyengine_policy_set_shrinks_total", result="refused") == 2
    warned = [line for line in running.logs() if line.get("removed") and line["level"] == "warning"]
    assert warned and warned[-1]["removed"] == ["lenient-check", "team-label"]
    assert running.process.poll() is None


@pytest.mark.parametrize("running", [("--allow-empty-policies",)], indirect=True)
def test_allow_empty_policies_lets_the_set_be_emptied_and_still_reports_it(running: Server) -> None:
    with running.client() as client:
        assert _allowed(client, "x:latest") is False
        (running.policies / "policies.yaml").write_bytes(b"")
        _until(running, lambda: client.get("/readyz").json()["policies"]["policies"] == 0)
        assert client.get("/readyz").json()["policies"]["lastShrink"]["removedCount"] == 3
        assert _allowed(client, "x:latest") is True


def test_an_empty_policy_set_exits_2_at_start(tmp_path: Path) -> None:
    empty = tmp_path / "policies"
    empty.mkdir()
    (empty / "policies.yaml").write_bytes(b"")
    command = [sys.executable, "-m", "policyengine", "serve", "--insecure-http", "--no-default-policies"]
    done = subprocess.run(
        [*command, "--policies", str(empty)], capture_output=True, text=True, timeout=HANG_GUARD, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("policyengine: the policy set has no policies")
    assert "--allow-empty-policies" in done.stderr and str(empty) in done.stderr
