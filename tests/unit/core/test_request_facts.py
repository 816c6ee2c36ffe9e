"""A request's shared facts (``workload``, ``inventory``, ``org``) are computed once per request, whatever
the number of policies that read them, and each distinct data location is located once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Request
from policyengine.org import OrgRules
from policyengine.policyset import load_policy_set
from policyengine.workloads.located import Located

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
URIS = [f"s3://acme-eu-datasets/shard-{j}/" for j in range(5)] + ["gs://elsewhere/x"]


def deployment(containers: int, zone: str = "") -> Request:
    """A GPU Deployment whose containers all read the same data locations (as replicas of one server do),
    bound to residency ``zone`` when given."""
    env = [{"name": f"DATA_{j}", "value": uri} for j, uri in enumerate(URIS)]
    spec = {
        "containers": [
            {"name": f"c{i}", "image": "registry.acme.internal/ml/server:1", "env": env}
            for i in range(containers)
        ]
    }
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "llm",
            "namespace": "ml",
            "labels": {"policyengine.io/residency": zone} if zone else {},
        },
        "spec": {"replicas": 1, "template": {"spec": spec}},
    }
    (doc,) = parse_text(json.dumps(obj), "deployment.json")
    return request_for(doc)


@pytest.fixture(scope="module")
def engine() -> Engine:
    config = str(ROOT / "examples" / "governance.yaml")
    return Engine(load_policy_set([], config_paths=[config], include_bundled=True))


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_the_views_and_org_are_computed_once_per_request_for_every_policy(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = counting(monkeypatch, engine, "_views")
    org = counting(monkeypatch, OrgRules, "view")
    for expected in (1, 2, 3):
        decision = engine.evaluate(deployment(2), now=NOW)
        assert len({r.policy for r in decision.results}) > 5  # many policies read the same facts
        assert (views[0], org[0]) == (expected, expected)


def test_each_distinct_data_location_is_located_once_per_request(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lookups = counting(monkeypatch, OrgRules, "region_of")

    def fresh(self: OrgRules, *, deferred: bool = False) -> Located:  # nothing kept before
        return Located(self.region_of, pending=[] if deferred else None)

    monkeypatch.setattr(OrgRules, "locator", fresh)
    engine.evaluate(deployment(4), now=NOW)
    assert lookups[0] == 0  # no zone: no policy that runs reads the locations, so none is located
    zones = tmp_path / "zones.yaml"
    zones.write_text(
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: zones}\n"
        "spec: {residency: {zones: {eu: {regions: [eu-west-1]}}}}\n"
    )
    config = str(ROOT / "examples" / "governance.yaml")
    zoned = Engine(load_policy_set([], config_paths=[config, str(zones)], include_bundled=True))
    decision = zoned.evaluate(deployment(4, zone="eu"), now=NOW)
    assert lookups[0] == len(URIS)  # 4 containers name the same 6 locations: 6 lookups, not 24
    residency = {r.policy: r for r in decision.results if "residency" in r.policy}
    assert residency and all(r.outcome != "error" for r in residency.values())
    assert residency["residency-data-locations"].outcome == "fail"  # it read them: gs://elsewhere is unknown


def test_a_repeated_location_gets_the_same_region_and_unknown_stays_unknown() -> None:
    rules = OrgRules.from_config(
        {
            "residency": {
                "dataLocations": [{"prefix": "s3://", "region": "any"}, {"prefix": "s3://a/", "region": "eu"}]
            }
        }
    )
    locations = [
        {"uri": "s3://a/x", "path": "p0"},
        {"uri": "s3://a/x", "path": "p1", "unknown": True},  # unreadable: unknown even when its URI is known
        {"uri": "s3://a/x", "path": "p2"},
        {"uri": "s3://b/y", "path": "p3"},
    ]
    assert [(d["path"], d["region"]) for d in rules.located(locations)] == [
        ("p0", "eu"),
        ("p1", ""),
        ("p2", "eu"),
        ("p3", "any"),
    ]
