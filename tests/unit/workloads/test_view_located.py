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
    walk = Located(org.region_of)
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


def test_a_run_that_no_longer_lines_up_is_located_afresh() -> None:
    config, org = rules()
    env = [{"name": f"V{i}", "value": f"s3://bucket-1/{i}"} for i in range(3)]
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "env": env}]},
    }
    walk = Located(org.region_of)
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
