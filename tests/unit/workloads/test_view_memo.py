"""What the views remember across requests: the storage URIs of an env value and the region of a URI,
both pure functions of a short string, so the pods and re-applies of one workload do not read them again.
Both memos are bounded whatever the requests hold, and give the answers of a fresh reading."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

import policyengine.org as org_module
import policyengine.workloads.references as references
from policyengine.org import UNKNOWN_REGION, OrgRules
from policyengine.workloads import describe
from policyengine.workloads.values import storage_uris_in


def deployment(values: list[str]) -> dict[str, Any]:
    env = [{"name": f"V{i}", "value": v} for i, v in enumerate(values)]
    containers = [{"name": f"c{i}", "image": "r/i:1", "env": env} for i in range(3)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ml"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}},
    }


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []

    def read(text: str) -> list[str]:
        reads.append(text)
        return storage_uris_in(text)

    monkeypatch.setattr(references, "storage_uris_in", read)
    return reads


def test_an_env_value_seen_in_an_earlier_request_is_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(references, "_URIS_OF", {})
    reads = counted_reads(monkeypatch)
    values = [f"s3://memo-bucket/shard-{j}/" for j in range(5)] + ["--data=s3://a/x gs://b/y"]
    first = describe(deployment(values))["dataLocations"]
    assert sorted(reads) == sorted(values)  # once per distinct value, not once per container
    reads.clear()
    again = describe(copy.deepcopy(deployment(values)))["dataLocations"]  # a new request, new strings
    assert reads == [] and again == first
    assert [d["uri"] for d in first[:7]] == [*values[:5], "s3://a/x", "gs://b/y"]


def test_the_uri_memo_is_bounded_and_a_long_value_is_read_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(references, "_URIS_OF", {})
    many = [f"s3://b/{i}" for i in range(references._MEMO_SIZE + 1000)]
    long = "s3://far/" + "x" * references._MEMO_VALUE
    locations = describe(deployment([*many, long]))["dataLocations"]
    assert len(locations) == 3 * (len(many) + 1)
    assert len(references._URIS_OF) <= references._MEMO_SIZE
    assert long not in references._URIS_OF
    reads = counted_reads(monkeypatch)
    assert references.uris_of(long) == (long,) and reads == [long]
    assert references.uris_of(many[-1]) == (many[-1],) and reads == [long]  # the latest are remembered


class CountedPrefixes(tuple[tuple[str, str], ...]):
    """Registered prefixes that count how often they are scanned."""

    scans = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        CountedPrefixes.scans += 1
        return super().__iter__()


def rules() -> OrgRules:
    CountedPrefixes.scans = 0
    prefixes = CountedPrefixes([("s3://eu-data/", "eu-west-1"), ("s3://", "us-east-1")])
    return OrgRules(teams={}, zones={}, prefixes=prefixes)


def test_a_uri_located_in_an_earlier_request_is_not_scanned_again() -> None:
    org = rules()
    locations = [{"uri": f"s3://eu-data/{i % 3}", "path": f"p{i}"} for i in range(9)]
    locations.append({"uri": "gs://nowhere/x", "path": "q"})
    first = org.located(locations)
    assert CountedPrefixes.scans == 4  # the 4 distinct URIs
    assert org.located(copy.deepcopy(locations)) == first and CountedPrefixes.scans == 4
    assert [d["region"] for d in first] == ["eu-west-1"] * 9 + [UNKNOWN_REGION]


def test_the_region_memo_is_bounded_and_a_long_uri_is_located_each_time() -> None:
    org = rules()
    uris = [f"s3://eu-data/{i}" for i in range(org_module._MEMO_SIZE + 1000)]
    assert {org.region_of(u) for u in uris} == {"eu-west-1"}
    assert len(org._regions) <= org_module._MEMO_SIZE
    long = "s3://other/" + "x" * org_module._MEMO_URI
    scans = CountedPrefixes.scans
    assert org.region_of(long) == org.region_of(long) == "us-east-1"
    assert CountedPrefixes.scans == scans + 2 and long not in org._regions
    assert OrgRules.from_config({}) == OrgRules.from_config({})  # the memo is no part of the rules
