"""The ``org`` view: the organisation's facts about one request (team, quota pool, residency zone,
regions, data location regions), computed in Python once per request and shared by every policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.gate import request_for
from policyengine.inventory import from_documents, inventory_view, usage_by_team
from policyengine.loader import parse_text
from policyengine.model import Inventory, Request
from policyengine.org import UNKNOWN_REGION, OrgRules, pool_usage, pool_usage_by_resource
from policyengine.policyset import build_policy_set
from policyengine.views import views_for
from policyengine.workloads import describe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "gpu": {
        "teams": {"ml": {"quota": 16, "maxPerPod": 4}, "research": {"quota": 8}, "default": {"quota": 4}}
    },
    "residency": {
        "zones": {"eu": {"regions": ["eu-west-1", "europe-west4"]}, "us": {"regions": ["us-east-1"]}},
        "dataLocations": [
            {"prefix": "s3://acme/", "region": "eu-west-1"},
            {"prefix": "s3://acme/us/", "region": "us-east-1"},
            {"prefix": "s3://acme/u", "region": "europe-west4"},  # shorter than s3://acme/us/
            {"prefix": "s3://limbo/", "region": ""},  # registered without a region: still unknown
        ],
    },
}


def namespace(name: str, **labels: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(ns: str, gpus: int, labels: Any = None, datasets: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"p-{ns}-{gpus}", "namespace": ns}
    if labels is not None:
        meta["labels"] = labels
    if datasets:
        meta["annotations"] = {"policyengine.io/datasets": datasets}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]
        },
        "status": {"phase": "Running"},
    }


INVENTORY = from_documents(
    [
        namespace("train", **{"policyengine.io/team": "ml", "policyengine.io/residency": "eu"}),
        namespace("lab", **{"policyengine.io/team": "research"}),
        namespace("ghost", **{"policyengine.io/team": "ghost"}),
        namespace("plain"),
        pod("train", 6),
        pod("lab", 3),
        pod("ghost", 1),
        pod("plain", 2),
        pod("unlisted", 5),  # a namespace the inventory does not know: team default
    ]
)


def org(obj: dict[str, Any], inventory: Inventory = INVENTORY, config: Any = None) -> dict[str, Any]:
    rules = OrgRules.from_config(CONFIG if config is None else config)
    pools = pool_usage(usage_by_team(inventory), rules.teams)
    teams = inventory_view(inventory)["teams"]
    by_resource = pool_usage_by_resource({t: e["gpusInUseByResource"] for t, e in teams.items()}, rules.teams)
    data = describe(obj, CONFIG)["dataLocations"]
    return rules.view(obj["metadata"]["namespace"], obj, inventory, pools, data, by_resource)


def test_a_configured_team_is_its_own_quota_pool() -> None:
    view = org(pod("train", 1))
    assert view["team"] == "ml"
    assert view["quota"] == {
        "team": "ml",
        "limits": {"quota": 16, "maxPerPod": 4},
        "gpusInUse": 6,
        "gpusInUseByResource": {"nvidia.com/gpu": 6},
    }
    assert org(pod("lab", 1))["quota"] == {
        "team": "research",
        "limits": {"quota": 8},
        "gpusInUse": 3,
        "gpusInUseByResource": {"nvidia.com/gpu": 3},
    }


@pytest.mark.parametrize("ns, team", [("ghost", "ghost"), ("plain", "default"), ("nowhere", "default")])
def test_teams_without_an_entry_share_the_default_pool(ns: str, team: str) -> None:
    # ghost (1) + plain (2) + unlisted (5): a made-up team label opens no fresh quota.
    view = org(pod(ns, 1))
    assert view["team"] == team
    assert view["quota"] == {
        "team": "default",
        "limits": {"quota": 4},
        "gpusInUse": 8,
        "gpusInUseByResource": {"nvidia.com/gpu": 8},
    }


def test_no_default_entry_means_no_limits_for_the_pool() -> None:
    view = org(pod("ghost", 1), config={"gpu": {"teams": {"ml": {"quota": 1}}}})
    # research has no entry here either: its 3 GPUs join the pool.
    assert view["quota"] == {
        "team": "default",
        "limits": {},
        "gpusInUse": 11,
        "gpusInUseByResource": {"nvidia.com/gpu": 11},
    }


def test_the_namespace_zone_wins_over_the_workload_label() -> None:
    residency = org(pod("train", 0, labels={"policyengine.io/residency": "us"}))["residency"]
    assert (residency["zone"], residency["regions"]) == ("eu", ["eu-west-1", "europe-west4"])
    residency = org(pod("lab", 0, labels={"policyengine.io/residency": "us"}))["residency"]
    assert (residency["zone"], residency["regions"]) == ("us", ["us-east-1"])
    residency = org(pod("lab", 0, labels={"policyengine.io/residency": "mars"}))["residency"]
    assert (residency["zone"], residency["regions"]) == ("mars", [])  # bound, but to no defined zone
    assert org(pod("lab", 0))["residency"]["zone"] == ""


def test_each_data_location_gets_its_longest_prefix_region_and_unknown_is_one_value() -> None:
    uris = "s3://acme/x,s3://acme/us/y,s3://acme/uk,s3://limbo/z,gs://elsewhere/q"
    located = org(pod("train", 0, datasets=uris))["residency"]["dataLocations"]
    assert [(d["uri"], d["region"]) for d in located] == [
        ("s3://acme/x", "eu-west-1"),
        ("s3://acme/us/y", "us-east-1"),
        ("s3://acme/uk", "europe-west4"),
        ("s3://limbo/z", UNKNOWN_REGION),
        ("gs://elsewhere/q", UNKNOWN_REGION),
    ]
    assert all(d["path"] == "metadata.annotations[policyengine.io/datasets]" for d in located)


def test_equal_prefixes_resolve_to_the_first_written() -> None:
    rules = OrgRules.from_config(
        {
            "residency": {
                "dataLocations": [
                    {"prefix": "s3://a/", "region": "one"},
                    {"prefix": "s3://a/", "region": "two"},
                ]
            }
        }
    )
    assert rules.region_of("s3://a/x") == "one"


@pytest.mark.parametrize(
    "labels",
    [
        "not a mapping",
        {"policyengine.io/residency": 5},
        {"policyengine.io/residency": {"nested": ["x"] * 3}},
        {"policyengine.io/residency": None},
    ],
)
def test_hostile_labels_still_bind_or_fall_back_and_never_raise(labels: Any) -> None:
    residency = org(pod("lab", 0, labels=labels))["residency"]
    if isinstance(labels, dict):
        # A label written as a non-string still binds the workload (to a zone no config defines).
        assert residency["zone"] not in ("", "eu", "us")
        assert residency["regions"] == []
    else:
        assert residency["zone"] == ""


def test_hostile_config_shapes_give_empty_facts() -> None:
    view = org(
        pod("train", 1), config={"gpu": {"teams": ["ml"]}, "residency": {"zones": "eu", "dataLocations": {}}}
    )
    assert view["quota"]["limits"] == {}
    assert view["residency"]["regions"] == []


def test_the_view_provider_binds_org_once_per_request_for_every_policy() -> None:
    policy_set = build_policy_set(
        parse_text(
            """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu: {teams: {ml: {quota: 16}}}
  residency: {zones: {eu: {regions: [eu-west-1]}}}
""",
            "config.yaml",
        )
    )
    provide = views_for(policy_set)
    (doc,) = parse_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: train}\nspec: {}\n", "m.yaml"
    )
    request: Request = request_for(doc)
    views = provide(request, INVENTORY, policy_set.config, datetime.now(UTC))
    assert views["org"]["team"] == "ml"
    assert views["org"]["quota"] == {
        "team": "ml",
        "limits": {"quota": 16},
        "gpusInUse": 6,
        "gpusInUseByResource": {"nvidia.com/gpu": 6},
    }
    assert views["org"]["residency"]["zone"] == "eu"
    assert views["org"]["residency"]["regions"] == ["eu-west-1"]
    # The pool usage is computed once per inventory, like the inventory view itself.
    assert (
        provide(request, INVENTORY, policy_set.config, datetime.now(UTC))["inventory"] is views["inventory"]
    )
