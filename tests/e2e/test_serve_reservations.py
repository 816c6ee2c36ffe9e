"""``policyengine serve --inventory`` charges GPU reservations as it admits: two workloads sent at once
into a team with room for one get one allow and one deny, over TLS as kube-apiserver calls it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from policyengine.policyset import bundled_policies_dir
from tests.e2e.test_serve import _start, _stop, certs  # noqa: F401  (certs is a fixture)
from tests.unit.webhook.builders import pod, review
from webhook.prometheus import parse_samples

pytestmark = pytest.mark.e2e

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      vision: {quota: 8}
"""
INVENTORY = """
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {policyengine.io/team: vision}}
"""


def gpu_pod(name: str) -> dict[str, Any]:
    obj = pod(name, labels={"team": "t"})
    obj["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 8}}
    return obj


def test_two_admissions_into_room_for_one_give_one_allow_and_one_deny(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    pack = str(bundled_policies_dir() / "gpu-quotas")
    running = _start(
        tmp_path, certs, "--policies", pack, "--config", str(tmp_path / "config.yaml"),
        "--inventory", str(tmp_path / "inventory.yaml"),
    )  # fmt: skip
    try:
        with running.client() as client:
            # A dry run is judged but reserves nothing.
            dry = review(gpu_pod("probe"), uid="dry", dry_run=True)
            assert client.post("/validate", json=dry).json()["response"]["allowed"] is True
            assert client.get("/readyz").json()["reservations"] == {"store": "memory", "healthy": True}

        async def both() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=running.url, verify=running.tls, timeout=30) as client:
                sent = [client.post("/validate", json=review(gpu_pod(n), uid=n)) for n in ("a", "b")]
                return [r.json()["response"] for r in await asyncio.gather(*sent)]

        answers = asyncio.run(both())
        assert sorted(a["allowed"] for a in answers) == [False, True]
        (denied,) = [a for a in answers if not a["allowed"]]
        assert "[gpu-team-quota]" in denied["status"]["message"]
        assert "apps//Pod/" in denied["status"]["message"]  # the reservation it lost to is named
        with running.client() as client:
            samples = list(parse_samples(client.get("/metrics").text))
        made = [
            v
            for n, labels, v in samples
            if n == "policyengine_gpu_reservations_total" and labels.get("result") == "made"
        ]
        assert made == [1.0]
    finally:
        _stop(running)
