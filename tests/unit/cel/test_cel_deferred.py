"""Which expressions may read a deferrable field (``policyengine.cel.deferred``): every way of reaching
one counts, and only a selection chain that leaves every deferrable path does not."""

from __future__ import annotations

import pytest

from policyengine.cel import get_backend
from policyengine.cel.deferred import reads_deferred
from policyengine.cel.fast import FastExpr
from policyengine.cel.parser import parse

READS = [
    "size(workload.dataLocations) > 0",
    "workload.dataLocations[0].uri",
    "org.residency.dataLocations.filter(d, d.region == '')",
    "has(workload.dataLocations)",
    "has(org.residency.dataLocations)",
    "workload['dataLocations']",
    "org.residency['dataLocations']",
    "workload.?dataLocations.orValue([])",
    ".workload.dataLocations",
    ".org.residency.dataLocations",
    "org",
    "workload",
    "org.residency",
    "string(size(org.residency))",
    "[workload].map(w, w.dataLocations)",
    "workload.exists(k, k == 'dataLocations')",
    "{'a': org}.a.residency.zone",
    "x.map(org, org.residency.zone)",  # a comprehension's name shadowing a root: taken as the root
    "true ? workload : org",
]
DOES_NOT = [
    "org.residency.zone != ''",
    "org.residency.regions.join(',')",
    "workload.gpus.total > 0",
    "org.quota.team == 'a'",
    "workload.models.exists(m, m.uri == '')",
    "object.spec.dataLocations",
    "variables.dataLocations",  # a variable's own expression fills them when it is computed
    "has(workload.gpus)",
    "'workload.dataLocations'",
]


@pytest.mark.parametrize("source", READS)
def test_every_route_to_a_deferrable_field_reads_it(source: str) -> None:
    assert reads_deferred(parse(source, positions=False))


@pytest.mark.parametrize("source", DOES_NOT)
def test_a_chain_that_leaves_every_deferrable_path_does_not(source: str) -> None:
    assert not reads_deferred(parse(source, positions=False))


def test_the_fast_backend_marks_what_it_compiles() -> None:
    backend = get_backend("fast")
    reads, does_not = (
        backend.compile("size(workload.dataLocations) > 0"),
        backend.compile("workload.gpus.total > 0"),
    )
    assert isinstance(reads, FastExpr) and isinstance(does_not, FastExpr)
    assert reads.defers and not does_not.defers
    assert backend.defers and not get_backend("reference").defers


def test_a_tree_too_large_to_read_is_taken_to_read_them() -> None:
    # Over 5,000 nodes of field reads that never name a deferrable field: past the bound, the answer is yes.
    source = " || ".join(["object.a.b == workload.gpus.total"] * 1000)
    assert reads_deferred(parse(source, positions=False))
    assert not reads_deferred(parse(" || ".join(["object.a.b == workload.gpus.total"] * 20), positions=False))
