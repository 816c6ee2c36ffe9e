"""The starter config's guesses: where data lives, how values and comments are written."""

from __future__ import annotations

import pytest
import yaml

from policyengine.starter import DataPrefix, Facts, Where, Zone, prefix_of
from policyengine.startercfg import Node, comment_text, emit, quote, render


@pytest.mark.parametrize(
    ("uri", "prefix"),
    [
        ("hf://meta-llama/Llama-3.2-1B", "hf://meta-llama/"),
        ("s3://bucket/a/b", "s3://bucket/"),
        ("oci://ghcr.io/org/model:1", "oci://ghcr.io/"),
        ("s3://?", ""),  # a bucket the manifest does not name
        ("/mnt/models", ""),
        ("hf://", ""),
    ],
)
def test_uris_group_by_scheme_and_authority(uri: str, prefix: str) -> None:
    assert prefix_of(uri) == prefix


def _facts(prefix: str, kind: str, regions: list[str], zone_regions: list[str]) -> Facts:
    facts = Facts()
    here = Where("m.yaml:3")
    facts.zones["eu"] = Zone(here, dict.fromkeys(zone_regions, here))
    facts.data[prefix] = DataPrefix(here, kind, dict.fromkeys(regions, here), {"eu"})
    return facts


@pytest.mark.parametrize(
    ("prefix", "kind", "regions", "zone_regions", "region"),
    [
        ("s3://data/", "data", ["eu-west-1"], [], "eu-west-1"),  # readers pinned to one region
        ("s3://weights/", "model", ["eu-west-1"], [], "eu-west-1"),  # weights in a bucket: the same
        (
            "gs://data/",
            "data",
            [],
            ["europe-west4"],
            "europe-west4",
        ),  # readers unpinned: their zone's one region
        ("s3://data/", "data", ["eu-west-1", "eu-west-2"], [], ""),  # readers in two regions: unknown
        ("s3://data/", "data", [], ["eu-west-1", "eu-west-3"], ""),
        ("hf://org/", "model", ["eu-west-1"], [], ""),  # a hub serves from wherever it is
        ("oci://registry/", "model", ["eu-west-1"], [], ""),
    ],
)
def test_a_data_region_is_guessed_only_when_one_region_fits(
    prefix: str, kind: str, regions: list[str], zone_regions: list[str], region: str
) -> None:
    text = render(_facts(prefix, kind, regions, zone_regions), ["m.yaml"])
    [location] = yaml.safe_load(text)["spec"]["residency"]["dataLocations"]
    assert location == {"prefix": prefix, "region": region}
    line = next(line for line in text.splitlines() if line.strip().startswith("region:"))
    assert ("placeholder" in line) == (region == "")


@pytest.mark.parametrize(
    "value", ["plain", "a\nb", 'q"\\', "#x", "\u2028\x85\r\t\x00", "\U0001f600 é", "yes", "~", "<<", "- x"]
)
def test_values_and_comments_are_one_printable_ascii_line(value: str) -> None:
    assert yaml.safe_load(quote(value)) == value
    for text in (quote(value), comment_text(value)):
        assert all(" " <= ch <= "~" for ch in text)
    node = Node()
    node.put(value, Node()).put("quota", 1, value)
    text = "\n".join(emit(node)) + "\n"
    assert yaml.safe_load(text) == {value: {"quota": 1}}


def test_a_long_comment_is_cut() -> None:
    assert len(comment_text("x" * 10_000)) == 300 and comment_text("x" * 10_000).endswith("...")
