"""Three ``policyengine serve`` replicas sharing one PostgreSQL reservation store: 50 admissions of 8-GPU
workloads sent at once, spread over the replicas, into a team with a 64-GPU quota. Exactly 8 are allowed:
no two replicas can give the same GPUs away, and none is lost to a refused write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from policyengine.policyset import bundled_policies_dir
from tests.e2e.test_serve import _start, _stop, certs  # noqa: F401  (certs is a fixture)
from tests.e2e.test_serve_reservations import INVENTORY, gpu_pod
from tests.unit.webhook.builders import review
from tests.unit.webhook.test_pgreservations import pg_dsn  # noqa: F401  (a fixture: a fresh schema)

pytestmark = pytest.mark.e2e

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      vision: {quota: 64}
"""
REPLICAS, ADMISSIONS = 3, 50


def test_three_replicas_sharing_postgresql_admit_exactly_the_quota(
    tmp_path: Path,
    certs: Path,  # noqa: F811
    pg_dsn: str,  # noqa: F811
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    pack = str(bundled_policies_dir() / "gpu-quotas")
    servers = []
    try:
        for i in range(REPLICAS):
            home = tmp_path / f"replica-{i}"
            home.mkdir()
            servers.append(
                _start(
                    home,
                    certs,
                    "--policies",
                    pack,
                    "--config",
                    str(tmp_path / "config.yaml"),
                    "--inventory",
                    str(tmp_path / "inventory.yaml"),
                    "--reservations",
                    pg_dsn,
                )
            )

        async def all_at_once() -> list[dict[str, Any]]:
            clients = [
                httpx.AsyncClient(
                    base_url=s.url, verify=s.tls, timeout=60, limits=httpx.Limits(max_connections=64)
                )
                for s in servers
            ]
            try:
                sent = [
                    clients[n % REPLICAS].post("/validate", json=review(gpu_pod(f"w{n}"), uid=f"u{n}"))
                    for n in range(ADMISSIONS)
                ]
                return [r.json()["response"] for r in await asyncio.gather(*sent)]
            finally:
                for client in clients:
                    await client.aclose()

        answers = asyncio.run(all_at_once())
        allowed = [a for a in answers if a["allowed"]]
        assert len(allowed) == 64 // 8, [a.get("status", {}).get("message", "")[:200] for a in answers]
        denied = [a for a in answers if not a["allowed"]]
        # Every refusal is the quota's, never an error of the store.
        assert all("[gpu-team-quota]" in a["status"]["message"] for a in denied)
        assert not any("reservation_unavailable" in a["status"]["message"] for a in denied)
        for server in servers:
            with server.client() as client:
                assert client.get("/readyz").json()["reservations"]["healthy"] is True
    finally:
        for server in servers:
            _stop(server)
