"""The env walk locates the data locations it finds (``workloads.located``): ``org.residency.dataLocations``
is built in that walk. The views are the plain ones: the same records, key order and references as a walk
without the rules, on every upstream and hostile manifest, on a repeat request too."""

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
    walk = org.locator()  # as the views make it: the templates of earlier requests kept
    view = describe(copy.deepcopy(obj), config, located=walk)  # a new request: new objects
    return view, org.located(view["dataLocations"], walk.runs), walk


def as_written(value: Any) -> str:
    """The view as JSON in its own key order (``==`` on dicts ignores order)."""
    return json.dumps(value, default=str)


def test_the_walk_locates_as_it_goes_and_gives_the_plain_views() -> None:
    config, org = rules()
    runs = 0
    for where, obj in all_objects():
        plain = describe(copy.deepcopy(obj), config)  # no rules: nothing located, nothing kept
        want = plain_located(org, plain["dataLocations"])
        for _ in range(2):  # a repeat request gives the same views
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


def pod(env: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "env": env}]},
    }


def test_kept_templates_give_new_records_and_other_rules_their_own_regions() -> None:
    config, org = rules()
    env = [{"name": f"V{i}", "value": f"s3://bucket-1/shard-{i}/"} for i in range(8)]
    first, located, _ = located_views(pod(env), config, org)
    assert len(org._templates) == 8
    again, located_again, _ = located_views(pod(env), config, org)
    assert again == first and located_again == located
    # Each request gets records of its own: the kept templates are copied, never handed out.
    assert all(a is not b for a, b in zip(first["dataLocations"], again["dataLocations"], strict=True))
    assert all(a is not b for a, b in zip(located, located_again, strict=True))
    kept = {id(t) for pairs in org._templates.values() for pair in pairs for t in pair if t is not None}
    assert kept.isdisjoint(id(d) for d in [*again["dataLocations"], *located_again])
    again["dataLocations"][0]["uri"] = "changed"  # a view written into leaves the next one as it was
    assert located_views(pod(env), config, org)[0] == first
    _, other = rules([{"prefix": "s3://bucket-1/", "region": "ap"}])
    _, located_other, _ = located_views(pod(env), config, other)
    assert {d["region"] for d in located_other} == {"ap"} and {d["region"] for d in located} == {"eu"}


def test_the_kept_templates_are_bounded_in_number_and_in_what_one_value_holds() -> None:
    config, org = rules()
    for i in range(references._MEMO_SIZE + 50):
        located_views(pod([{"name": "V", "value": f"s3://b/{i}"}]), config, org)
        assert len(org._templates) <= references._MEMO_SIZE
    org._templates.clear()
    long_value = "s3://b/" + "x" * references._MEMO_VALUE
    many = " ".join(f"s3://b/{i}" for i in range(references._KEPT_URIS + 1))
    for value in (long_value, many):
        view, located, _ = located_views(pod([{"name": "V", "value": value}]), config, org)
        assert view == describe(pod([{"name": "V", "value": value}]), config)
        assert located == plain_located(org, view["dataLocations"])
    assert org._templates == {}


def test_a_run_that_no_longer_lines_up_is_located_afresh() -> None:
    config, org = rules()
    env = [{"name": f"V{i}", "value": f"s3://bucket-1/{i}"} for i in range(3)]
    obj = pod(env)
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
