"""The views of a large workload (about 100 KB of JSON: many containers with long env lists of data
locations, as bench/engine.py builds) are what the plain walks give, and the whole view is the one pinned
below; the residency rules still see every location on both CEL backends and deny the one outside the
zone, however far down the manifest it is."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cel import get_backend
from policyengine.engine import EMPTY_INVENTORY, Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Request
from policyengine.org import OrgRules
from policyengine.policyset import load_policy_set
from policyengine.views import views_for
from policyengine.workloads.kinds import find_templates
from tests.unit.workloads.test_view_walks import plain_located, plain_scan

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ZONE_LABEL = "policyengine.io/residency"
OUTSIDE = "gs://acme-us-data/exports/last.parquet"  # us-central1 in the example config: outside eu

# The canonical JSON of the whole view (workload, inventory, org) of ``large()``, recorded from the
# views before their per-entry walks were made faster. A deliberate change of the views' contents
# changes it: check the change against the plain-walk pins below, then record the new digest.
VIEW_DIGEST = "946c7a9900c60c042c8d8dcd2965671580ea8ad6c674a6666ff5587dbd1a869a"


def container(i: int, env: int) -> dict[str, Any]:
    return {
        "name": f"c{i}",
        "image": f"registry.acme.internal/ml/server@sha256:{'ab' * 32}",
        "env": [
            {"name": f"VAR_{i}_{j}", "value": f"s3://acme-eu-datasets/shard-{j:05d}/"} for j in range(env)
        ],
        "ports": [{"containerPort": 8080 + i}],
        "resources": {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}},
    }


def large(last_value: str | None = None) -> dict[str, Any]:
    """A Deployment of about 100 KB bound to zone eu: 32 containers of 40 data locations each (all in
    eu-west-1); ``last_value`` replaces the value of the last env entry of the last container."""
    containers = [container(i, 40) for i in range(32)]
    if last_value is not None:
        containers[-1]["env"][-1]["value"] = last_value
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm-server", "namespace": "ml", "labels": {"owner": "ml", ZONE_LABEL: "eu"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": containers}}},
    }


def request(obj: dict[str, Any]) -> Request:
    text = json.dumps(obj)
    assert len(text) > 95 * 1024  # the size the engine bench's largest row measures
    (doc,) = parse_text(text, "large.json")
    return request_for(doc)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example organisation's config with residency zone eu (and without its signing key, whose
    path is relative to the examples: the workload names no model)."""
    config = yaml.safe_load((ROOT / "examples" / "governance.yaml").read_text())
    config["spec"]["residency"]["zones"] = {"eu": {"regions": ["eu-west-1"]}}
    config["spec"]["models"].pop("trustedKeys")
    path = tmp_path_factory.mktemp("config") / "governance.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def engine(config_path: str, backend: str) -> Engine:
    compiler = Compiler(get_backend(backend))
    return Engine(load_policy_set([], config_paths=[config_path], include_bundled=True, compiler=compiler))


def test_the_views_of_a_large_workload_equal_the_plain_walks_and_the_pinned_view(config_path: str) -> None:
    policy_set = load_policy_set([], config_paths=[config_path], include_bundled=True)
    provide = views_for(policy_set)
    req = request(large())
    views = provide(req, EMPTY_INVENTORY, policy_set.config, NOW)
    assert req.object is not None
    sites = [site for t in find_templates(req.object, []) for site in t.containers]
    want = [location for site in sites for location in plain_scan(site)[0]]
    assert len(want) == 32 * 40
    assert views["workload"]["dataLocations"] == want
    located = views["org"]["residency"]["dataLocations"]
    assert located == plain_located(OrgRules.from_config(policy_set.config), want)
    assert {d["region"] for d in located} == {"eu-west-1"}
    # The org entries are copies: the workload's own entries carry no region.
    assert all("region" not in d for d in views["workload"]["dataLocations"])
    # The same view on every request (no state carried from one request to the next).
    again = provide(request(large()), EMPTY_INVENTORY, policy_set.config, NOW)
    # A repeat request writes the same records in the same key order.
    assert again["workload"]["dataLocations"] == want
    assert json.dumps(again, default=str) == json.dumps(views, default=str)
    assert [list(d) for d in again["org"]["residency"]["dataLocations"]] == [[*d, "region"] for d in want]
    canonical = json.dumps(views, sort_keys=True, default=str)
    assert json.dumps(again, sort_keys=True, default=str) == canonical
    assert hashlib.sha256(canonical.encode()).hexdigest() == VIEW_DIGEST


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_a_location_outside_the_zone_is_denied_at_the_end_of_a_large_workload(
    config_path: str, backend: str
) -> None:
    checked = engine(config_path, backend)
    inside = checked.evaluate(request(large()), now=NOW)
    passed = [str(r.outcome) for r in inside.results if r.policy == "residency-data-locations"]
    assert passed and set(passed) == {"pass"}
    outside = checked.evaluate(request(large(OUTSIDE)), now=NOW)
    results = [r for r in outside.results if r.policy == "residency-data-locations"]
    (denied,) = [r for r in results if str(r.outcome) != "pass"]
    assert str(denied.outcome) == "fail", results
    assert OUTSIDE in denied.message and "us-central1" in denied.message
    assert "spec.template.spec.containers[31].env[39].value" in denied.message
    assert not outside.allowed
