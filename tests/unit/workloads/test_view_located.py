"""The env walk locates the data locations it finds (``workloads.located``): ``org.residency.dataLocations``
is built in that walk, and a walk is kept across requests by the org rules, bounded. Whatever was kept, the
views are the plain ones: the same records, key order and references as a fresh walk without the rules, on
every upstream and hostile manifest, on a repeat request, after a change of one value, under other rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

import policyengine.workloads.references as references
from policyengine.org import OrgRules
from policyengine.workloads import describe
from policyengine.workloads.located import Located
from policyengine.workloads.values import sha256_of
from tests.unit.workloads.test_view_walks import CONFIG, all_objects, plain_located

PREFIXES = [
    {"prefix": "s3://bucket-1/", "region": "eu"},
    {"prefix": "s3://", "region": "us"},
    {"prefix": "gs://b", "region": 5},
]


def rules(prefixes: list[dict[str, Any]] = PREFIXES) -> tuple[dict[str, Any], OrgRules]:
    config = yaml.safe_load(CONFIG.read_text())
    config.get("spec", config).setdefault("residency", {})["dataLocations"] = prefixes
    return config, OrgRules.from_config(config)


def located_views(
    obj: dict[str, Any], config: dict[str, Any], org: OrgRules
) -> tuple[dict[str, Any], list[dict[str, Any]], Located]:
    walk = org.locator()
    view = describe(copy.deepcopy(obj), config, located=walk)  # a new request: new objects
    return view, org.located(view["dataLocations"], walk.runs), walk


def as_written(value: Any) -> str:
    """The view as JSON in its own key order (``==`` on dicts ignores order)."""
    return json.dumps(value, default=str)


def test_the_walk_locates_as_it_goes_and_a_kept_walk_gives_the_plain_views() -> None:
    config, org = rules()
    runs = 0
    for where, obj in all_objects():
        plain = describe(copy.deepcopy(obj), config)  # no rules: nothing located, nothing kept
        want = plain_located(org, plain["dataLocations"])
        for _ in range(2):  # the second request finds the walks of the first
            view, located, walk = located_views(obj, config, org)
            assert as_written(view) == as_written(plain), where
            assert as_written(located) == as_written(want), where
            # Every env location (and only those) is located in the walk.
            in_runs = sum(len(records) for _, records in walk.runs)
            assert in_runs == sum(
                1 for d in plain["dataLocations"] if (d["source"], d["kind"]) == ("env", "data")
            ), where
            runs += len(walk.runs)
            # The env records are located in the walk: the org list holds the walk's own records.
            for start, records in walk.runs:
                assert located[start : start + len(records)] == list(records), where
                assert all(a is b for a, b in zip(located[start:], records, strict=False)), where
    assert runs >= 8


def test_a_kept_walk_is_used_again_and_a_changed_value_is_walked_afresh() -> None:
    config, org = rules()
    env = [{"name": f"V{i}", "value": f"s3://bucket-1/shard-{i}/"} for i in range(40)]
    env.append({"name": "MODEL_ID", "value": "org/model"})
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "env": env}]},
    }
    first, located, _ = located_views(obj, config, org)
    again, located_again, _ = located_views(obj, config, org)
    # The repeat shares the kept records (nothing writes into them), and the org list its located ones.
    kept = [d for d in again["dataLocations"] if (d["source"], d["kind"]) == ("env", "data")]
    assert len(kept) == 40 and all(a is b for a, b in zip(first["dataLocations"], kept, strict=False))
    assert all(a is b for a, b in zip(located, located_again[:40], strict=False))
    assert [m["uri"] for m in again["models"]] == ["hf://org/model"] and again == first
    assert {d["region"] for d in located_again[:40]} == {"eu"}
    env[7]["value"] = "gs://elsewhere/x"  # one value changed: the container is walked afresh
    changed, located_changed, _ = located_views(obj, config, org)
    assert changed["dataLocations"][7]["uri"] == "gs://elsewhere/x"
    assert located_changed[7]["region"] == "" and located_changed[6]["region"] == "eu"
    assert changed == describe(copy.deepcopy(obj), config)
    # Other rules keep their own walks: the same env under them gets their regions.
    _, other = rules([{"prefix": "s3://bucket-1/", "region": "ap"}])
    _, located_other, _ = located_views(obj, config, other)
    assert located_other[6]["region"] == "ap"


def test_the_kept_walks_are_bounded_and_a_long_or_odd_env_is_walked_each_time() -> None:
    config, org = rules()

    def pod(env: list[Any]) -> dict[str, Any]:
        containers = [{"name": "c", "env": env}]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": containers},
        }

    for i in range(references._WALK_SIZE + 50):
        located_views(pod([{"name": "V", "value": f"s3://b/{i}"}]), config, org)
        assert len(org._walks) <= references._WALK_SIZE
    org._walks.clear()
    long_env = [{"name": f"V{i}", "value": f"s3://b/{i}"} for i in range(references._WALK_ENTRIES + 1)]
    long_value = [{"name": "V", "value": "s3://b/" + "x" * references._MEMO_VALUE}]
    long_name = [{"name": "N" * (references._MEMO_VALUE + 1), "value": "s3://b/x"}]
    many_uris = [{"name": "V", "value": " ".join(f"s3://b/{i}" for i in range(20))}] * 4  # 80 locations
    odd = [{"name": 1, "value": "s3://b/x"}, {"name": "L", "value": ["s3://b/y"]}, "s3://b/z", None]
    for env in (long_env, long_value, long_name, many_uris, odd):
        view, located, _ = located_views(pod(env), config, org)
        assert view == describe(pod(env), config)
        assert located == plain_located(org, view["dataLocations"])
    assert org._walks == {}
    # A valueFrom entry (no value) keeps the walk; the kept key holds at most 2 strings per entry.
    env = [
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "V", "value": "s3://b/v"},
    ]
    located_views(pod(env), config, org)
    ((key, _),) = org._walks.items()
    assert len(key) == 2 + 2 * len(env)


def test_a_run_that_no_longer_lines_up_is_located_afresh() -> None:
    config, org = rules()
    env = [{"name": f"V{i}", "value": f"s3://bucket-1/{i}"} for i in range(3)]
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "env": env}]},
    }
    walk = org.locator()
    data = describe(obj, config, located=walk)["dataLocations"]
    assert walk.runs
    moved = [{"uri": "gs://b/first", "path": "x", "source": "env", "kind": "data"}, *data]
    assert org.located(moved, walk.runs) == plain_located(org, moved)


def test_the_image_digest_memo_is_bounded_and_gives_the_digest_of_a_fresh_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(references, "_DIGESTS", {})
    images = [f"r/i{i}@sha256:{i:064x}" for i in range(references._MEMO_SIZE + 100)]
    images += [
        "r/i:latest",
        "r/i@sha256:" + "A" * 64,
        "r/" + "x" * references._MEMO_VALUE + "@sha256:" + "b" * 64,
    ]
    for image in images * 2:
        assert references.digest_of(image) == sha256_of(image)
        assert len(references._DIGESTS) <= references._MEMO_SIZE
    assert images[-1] not in references._DIGESTS and images[-2] in references._DIGESTS
