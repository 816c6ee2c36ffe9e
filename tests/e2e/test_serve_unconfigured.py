"""``policyengine serve`` never runs unconfigured by surprise: it refuses to start while a policy lacks
the GovernanceConfig facts it needs, unless --allow-unconfigured; then /readyz and a metric name them,
and a reload with a new config recomputes them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import Server, _cli, _start, _stop
from webhook.prometheus import parse_samples

pytestmark = pytest.mark.e2e

HANG_GUARD = 60.0  # seconds: fails a stuck test with the server's log, never a timing assertion
ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: org}\nspec: {models: {%s}}\n"
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    _cli("certs", "--out", str(out), "--dns", "localhost", "--dns", "127.0.0.1")
    return out


def test_serve_refuses_to_start_naming_each_policy_and_the_keys_it_needs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "policyengine", "serve", "--insecure-http", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("policyengine: 11 policies lack the organisation facts they need")
    assert "gpu-team-quota (needs spec.gpu.teams or spec.gpu.teamsFrom=kueue)" in done.stderr
    assert "model-approved-source (needs spec.models.approvedSources)" in done.stderr
    assert "--allow-unconfigured" in done.stderr and "Traceback" not in done.stderr


def _until(server: Server, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.05)


def _unconfigured_metric(client: httpx.Client) -> dict[str, str]:
    samples = parse_samples(client.get("/metrics").text)
    return {
        ls["policy"]: ls["needs"]
        for n, ls, v in samples
        if n == "policyengine_policies_unconfigured" and v == 1
    }


def test_allow_unconfigured_starts_and_readyz_and_the_metric_say_which_until_a_reload_configures_them(
    tmp_path: Path, certs: Path
) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(CONFIG % "", encoding="utf-8")
    pack = str(ROOT / "policies" / "model-provenance")
    server = _start(tmp_path, certs, "--policies", pack, "--config", str(config), "--allow-unconfigured")
    try:
        with server.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["policies"]["unconfigured"] == [
                {"policy": "model-approved-source", "needs": ["spec.models.approvedSources"]},
                {
                    "policy": "model-signature-verified",
                    "needs": [
                        "spec.models.trustedKeys",
                        "spec.models.caCertificates",
                        "spec.models.trustedIdentities",
                    ],
                },
            ]
            assert _unconfigured_metric(client) == {
                "model-approved-source": "spec.models.approvedSources",
                "model-signature-verified": "spec.models.trustedKeys | spec.models.caCertificates | spec.models.trustedIdentities",
            }
            # A new config gives the approved sources: the reload recomputes what is still missing.
            config.write_text(
                CONFIG % 'approvedSources: ["oci://registry.example/models/"]', encoding="utf-8"
            )
            _until(server, lambda: len(client.get("/readyz").json()["policies"]["unconfigured"]) == 1)
            assert [u["policy"] for u in client.get("/readyz").json()["policies"]["unconfigured"]] == [
                "model-signature-verified"
            ]
            assert list(_unconfigured_metric(client)) == ["model-signature-verified"]
    finally:
        _stop(server)
